"""Project hooks (registered in settings.py)."""

from __future__ import annotations

import logging

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

from simlabel.runtime import distributed_rank_and_size, keep_freed_memory, use_threads

logger = logging.getLogger(__name__)


class RankZeroSavesHooks:
    """Under ``torchrun`` (simlabel.distributed) every rank runs the nodes but only rank 0 writes
    the catalog's files; other ranks keep in-memory datasets so the nodes can pass data on. Does
    nothing in a single-process run."""

    @hook_impl
    def after_catalog_created(self, catalog) -> None:
        rank, world = distributed_rank_and_size()
        if world == 1 or rank == 0:
            return
        save = catalog.save

        def save_in_memory_only(name: str, data) -> None:
            if isinstance(catalog[name], MemoryDataset):
                save(name, data)

        catalog.save = save_in_memory_only  # an instance attribute: this catalog only
        logger.info("rank %d of %d: catalog files are written by rank 0", rank, world)


class RuntimeHooks:
    """``runtime.threads`` (parameters_runtime.yml) and malloc's keeping of freed memory
    (``keep_freed_memory``) applied before any node runs, in every entry point that goes through
    a Kedro run (``kedro run``, ``python -m simlabel``, torchrun), and through the environment in
    the parallel runners' worker processes."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        keep_freed_memory()
        try:
            runtime = catalog.load("params:runtime")
        except Exception:  # a project copy without parameters_runtime.yml: keep torch's defaults
            return
        use_threads(int(runtime["threads"]))
        logger.info("torch and OpenMP threads: %d per process (runtime.threads)", runtime["threads"])
