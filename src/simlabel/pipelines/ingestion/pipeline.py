from kedro.pipeline import Node, Pipeline

from .nodes import (
    embed_clips,
    embed_images,
    extract_frames,
    list_items,
    read_features,
    select_embeddings,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Three paths, one per input kind (videos -> frames -> backbone; images -> backbone;
    features as they are); only the folder's kind does work."""
    return Pipeline(
        [
            Node(
                extract_frames,
                inputs=["crowd_folder", "params:dataset", "params:ingestion"],
                outputs=["frames", "video_items", "bad_videos"],
                name="extract_frames",
            ),
            Node(embed_clips, inputs=["frames", "params:ingestion"], outputs="video_embeddings", name="embed_clips"),
            Node(
                embed_images,
                inputs=["crowd_folder", "params:dataset", "params:ingestion"],
                outputs="image_embeddings",
                name="embed_images",
            ),
            Node(read_features, inputs=["crowd_folder", "params:dataset"], outputs="feature_embeddings", name="read_features"),
            Node(
                select_embeddings,
                inputs=["crowd_folder", "params:dataset", "video_embeddings", "image_embeddings", "feature_embeddings"],
                outputs="embeddings",
                name="select_embeddings",
            ),
            Node(list_items, inputs=["crowd_folder", "params:dataset", "video_items"], outputs="ingested_items",
                 name="list_items"),
        ],
        tags=["ingestion"],
    )
