from kedro.pipeline import Node, Pipeline

from .nodes import embed_clips, extract_frames


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                extract_frames,
                inputs=["raw_videos", "params:ingestion"],
                outputs=["frames", "ingested_items", "bad_videos"],
                name="extract_frames",
            ),
            Node(embed_clips, inputs=["frames", "params:ingestion"], outputs="embeddings", name="embed_clips"),
        ]
    )
