from kedro.pipeline import Node, Pipeline

from .nodes import apply_extra_missing, make_item_split, make_label_matrix


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                make_label_matrix,
                inputs=["crowd_folder", "ingested_items", "bad_videos", "params:dataset"],
                outputs=["label_matrix_full", "classes"],
                name="make_label_matrix",
            ),
            Node(make_item_split, inputs=["label_matrix_full", "crowd_folder", "params:label_matrix"], outputs="item_split",
                 name="make_item_split"),
            Node(
                apply_extra_missing,
                inputs=["label_matrix_full", "item_split", "params:label_matrix"],
                outputs="label_matrix",
                name="apply_extra_missing",
            ),
        ],
        tags=["label_matrix"],
    )
