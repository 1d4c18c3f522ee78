from kedro.pipeline import Node, Pipeline

from .nodes import apply_extra_missing, make_item_split, make_labels


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                make_labels,
                inputs=["crowd_folder", "ingested_items", "bad_videos", "params:dataset"],
                outputs=["labels_full", "classes"],
                name="make_labels",
            ),
            Node(make_item_split, inputs=["labels_full", "crowd_folder", "params:label_matrix"], outputs="item_split",
                 name="make_item_split"),
            Node(
                apply_extra_missing,
                inputs=["labels_full", "item_split", "params:label_matrix"],
                outputs="labels",
                name="apply_extra_missing",
            ),
        ],
        tags=["label_matrix"],
    )
