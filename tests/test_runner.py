"""``simlabel.runner.LongestFirst``: the ready nodes start longest first, by the durations the
previous run recorded; every node still runs and the outputs are ParallelRunner's."""

import json
import time

from kedro.io import MemoryDataset, SharedMemoryDataCatalog
from kedro.pipeline import Pipeline, node

from simlabel.runner import LongestFirst, longest_first, read_node_seconds


def started(seconds: float) -> float:
    """A node body: sleep, then report when it started."""
    now = time.time()
    time.sleep(seconds)
    return now


def collect(*starts: float) -> list[float]:
    return list(starts)


def toy_pipeline() -> Pipeline:
    # Three independent nodes (all ready at once), then one that needs them all.
    return Pipeline([
        node(started, "params:a", "a_started", name="short"),
        node(started, "params:b", "b_started", name="long"),
        node(started, "params:c", "c_started", name="middle"),
        node(collect, ["a_started", "b_started", "c_started"], "starts", name="collect"),
    ])


def run_toy(tmp_path, monkeypatch) -> dict[str, float]:
    monkeypatch.setenv("SIMLABEL_NODE_SECONDS", str(tmp_path / "node_seconds.json"))
    catalog = SharedMemoryDataCatalog({
        "params:a": MemoryDataset(0.01), "params:b": MemoryDataset(0.3), "params:c": MemoryDataset(0.1),
    })
    runner = LongestFirst(max_workers=1)  # one worker: nodes start in submission order
    outputs = runner.run(toy_pipeline(), catalog)
    a, b, c = outputs["starts"].load()  # before the runner (its shared-memory manager) is gone
    return {"short": a, "long": b, "middle": c}


def test_longest_first_orders_by_last_duration_and_untimed_nodes_first():
    class Named:
        def __init__(self, name):
            self.name = name

    nodes = [Named(n) for n in ("b", "new_2", "a", "c", "new_1")]
    order = [n.name for n in longest_first(nodes, {"a": 1.0, "b": 5.0, "c": 0.5})]
    assert order == ["new_1", "new_2", "b", "a", "c"]


def test_a_second_run_starts_the_slowest_ready_node_first(tmp_path, monkeypatch):
    first = run_toy(tmp_path, monkeypatch)
    recorded = read_node_seconds(tmp_path / "node_seconds.json")
    assert set(recorded) == {"short", "long", "middle", "collect"}
    assert recorded["long"] >= 0.3 > recorded["middle"] >= 0.1 > recorded["short"]
    # Nothing timed yet: name order.
    assert sorted(first, key=first.get) == ["long", "middle", "short"]
    second = run_toy(tmp_path, monkeypatch)
    assert sorted(second, key=second.get) == ["long", "middle", "short"]
    # Reversed durations on file: the order follows them.
    (tmp_path / "node_seconds.json").write_text(json.dumps({"short": 9.0, "middle": 5.0, "long": 1.0}))
    third = run_toy(tmp_path, monkeypatch)
    assert sorted(third, key=third.get) == ["short", "middle", "long"]


def test_every_node_of_the_registered_pipelines_can_go_to_a_parallel_worker(monkeypatch):
    """ParallelRunner (and LongestFirst, which the DVC stage uses) refuses a run whose nodes do
    not pickle (a closure, a lambda): check every registered pipeline's nodes up front, and that a
    reporting node still computes after a round trip."""
    import pickle

    import kedro.framework.project
    from kedro.runner import ParallelRunner

    from simlabel.pipeline_registry import register_pipelines

    monkeypatch.setattr(kedro.framework.project, "PACKAGE_NAME", "simlabel")  # what bootstrap_project sets
    pipelines = register_pipelines()
    assert {"demo_data", "ingestion", "label_matrix", "similarity", "training", "reporting", "simlabel",
            "paper_tables", "predict", "__default__"} <= set(pipelines)
    for pipeline in pipelines.values():
        ParallelRunner._validate_nodes(pipeline.nodes)  # raises AttributeError naming the culprits
        for each in pipeline.nodes:
            pickle.dumps(each)
    compare = next(n for n in pipelines["simlabel"].nodes if n.name == "compare_similarities")
    assert pickle.loads(pickle.dumps(compare.func)).bound == compare.func.bound == {"methods": compare.func.bound["methods"]}
    assert compare.func.bound["methods"] and compare.func.__name__ == "compare_similarities"
