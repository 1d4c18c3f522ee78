from kedro.pipeline import Node, Pipeline

from .nodes import generate_demo_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_demo_data,
                inputs="params:demo_data",
                outputs=[
                    "demo_videos", "demo_labels", "demo_classes", "demo_truth",
                    "demo_test_items", "demo_true_similarity",
                ],
                name="generate_demo_data",
            )
        ],
        tags=["demo_data"],
    )
