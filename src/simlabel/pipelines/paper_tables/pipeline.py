from kedro.pipeline import Node, Pipeline

from simlabel.pipelines.ingestion import create_pipeline as ingestion
from simlabel.pipelines.label_matrix import create_pipeline as label_matrix

from .nodes import paired_differences_plot, run_paper_experiments, summarise_paper_tables


def create_pipeline(**kwargs) -> Pipeline:
    """Ingestion and the labels of the folder, then every run and the tables."""
    return ingestion() + label_matrix().only_nodes("make_labels") + Pipeline(
        [
            Node(
                run_paper_experiments,
                inputs=[
                    "embeddings", "labels_full", "classes", "crowd_folder", "params:paper_tables", "params:training",
                    "params:similarity", "params:methods", "params:crowd_baselines",
                ],
                outputs="paper_runs",
                name="run_paper_experiments",
            ),
            Node(
                summarise_paper_tables,
                inputs="paper_runs",
                outputs=["paper_table_annotators", "paper_table_missing", "paper_table_ablation", "paper_table_paired",
                         "paper_tables_metrics", "paper_tables_markdown", "paper_tables_plot"],
                name="summarise_paper_tables",
            ),
            Node(paired_differences_plot, inputs="paper_table_paired", outputs="paper_paired_plot",
                 name="plot_paired_differences"),
        ],
        tags=["paper_tables"],
    )
