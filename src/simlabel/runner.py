"""``kedro run --runner=simlabel.runner.LongestFirst``: Kedro's ParallelRunner, except that when
several nodes are ready the one that took longest in the last run starts first.

Why: the methods are independent nodes that become ready together, and Kedro's ParallelRunner
submits ready nodes in set order, which changes with every process's string hashing. The
slowest method could start last and then run alone on one core: on CIFAR-10N the paper's
confidence cycling ran alone for the last 2 min 15 s of a 7 min 44 s run, and which method came
last moved the end by up to 2 minutes between runs. Longest first is the classic greedy
schedule for this (within 4/3 of the best makespan on identical workers).

Durations are measured in the worker around each node and written, after the run, to
``node_seconds.json`` (``SIMLABEL_NODE_SECONDS`` overrides the path; by default under
``data/``, which git ignores). Nodes never timed start first (in name order): an unknown node
may be long. Only the order changes: every node, input and output is what ParallelRunner runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from itertools import chain
from pathlib import Path

from kedro.runner import ParallelRunner, Task

logger = logging.getLogger(__name__)
DEFAULT_NODE_SECONDS = "data/node_seconds.json"


def node_seconds_path() -> Path:
    return Path(os.environ.get("SIMLABEL_NODE_SECONDS", DEFAULT_NODE_SECONDS))


def read_node_seconds(path: Path) -> dict[str, float]:
    """{node name: seconds} of earlier runs; empty if the file is missing or unreadable."""
    try:
        seconds = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in seconds.items()} if isinstance(seconds, dict) else {}


def write_node_seconds(path: Path, seconds: dict[str, float]) -> None:
    if not path.parent.is_dir():
        return  # not in a project folder (e.g. a library call): nothing to remember
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(seconds.items())), indent=1))
    tmp.replace(path)


def longest_first(nodes, last_seconds: dict[str, float]) -> list:
    """Nodes by decreasing duration in ``last_seconds``; those without one first, by name."""
    return sorted(nodes, key=lambda node: (-last_seconds.get(node.name, math.inf), node.name))


def _timed(task: Task):
    started = time.perf_counter()
    node = task.execute()
    return node, time.perf_counter() - started


class LongestFirst(ParallelRunner):
    """ParallelRunner that starts the ready nodes longest first (see the module docstring)."""

    def _run(self, pipeline, catalog, hook_manager=None, run_id=None) -> None:
        # Kedro 1.7's AbstractRunner._run (executor branch), with the ready nodes ordered and timed.
        nodes = pipeline.nodes
        self._validate_catalog(catalog)
        self._validate_nodes(nodes)
        self._set_manager_datasets(catalog)
        load_counts = Counter(chain.from_iterable(node.inputs for node in nodes))
        dependencies = pipeline.node_dependencies
        todo, done_nodes, futures, ready = set(dependencies), set(), set(), []
        path = node_seconds_path()
        last_seconds = read_node_seconds(path)
        seconds: dict[str, float] = {}
        with self._get_executor(self._get_required_workers_count(pipeline)) as executor:
            while True:
                ready = longest_first((node for node in todo if dependencies[node] <= done_nodes), last_seconds)
                todo.difference_update(ready)
                for node in ready:
                    task = Task(node=node, catalog=catalog, hook_manager=None, is_async=self._is_async, run_id=run_id)
                    task.parallel = True
                    futures.add(executor.submit(_timed, task))
                if not futures:
                    if todo:
                        self._raise_runtime_error(todo, done_nodes, set(ready), None)
                    break
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        node, seconds[node.name] = future.result()
                    except Exception:
                        self._suggest_resume_scenario(pipeline, done_nodes, catalog)
                        raise
                    done_nodes.add(node)
                    self._logger.info("Completed node: %s", node.name)
                    self._logger.info("Completed %d out of %d tasks", len(done_nodes), len(nodes))
                    self._release_datasets(node, catalog, load_counts, pipeline)
        write_node_seconds(path, {**last_seconds, **seconds})
