"""Run training pipelines on several GPUs / nodes with PyTorch DistributedDataParallel.

    torchrun --standalone --nproc_per_node=<gpus> -m simlabel.distributed
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-endpoint=<host:port> -m simlabel.distributed \\
        --pipelines training confidence_cycling --params "training.batch_size=256"

Every rank runs the nodes of the chosen pipelines (default: training and confidence_cycling)
on the catalog's inputs; the training loop shards each epoch's items over the ranks, averages
gradients (DDP) and all-gathers confident imputations, so every rank holds the same model,
imputed labels and similarity. Rank 0 alone writes the outputs through the catalog. Backend:
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch
import torch.distributed as dist

logger = logging.getLogger("simlabel.distributed")


def _parse_params(text: str | None) -> dict:
    """``"a.b=1,c=x"`` -> ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML, as kedro run)."""
    import yaml

    params: dict = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        *parents, leaf = key.strip().split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", nargs="+", default=["training", "confidence_cycling"])
    parser.add_argument("--params", default=None, help='runtime parameters, as kedro run: "a.b=1,c=x"')
    parser.add_argument("--project", default=".", help="Kedro project folder")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank()
    try:
        from kedro.framework.project import pipelines
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        project = Path(args.project).resolve()
        bootstrap_project(project)
        with KedroSession.create(project_path=project, runtime_params=_parse_params(args.params)) as session:
            catalog = session.load_context().catalog
            pipeline = sum((pipelines[name] for name in args.pipelines[1:]), pipelines[args.pipelines[0]])
            produced: dict = {}
            for node in pipeline.nodes:
                inputs = {name: produced[name] if name in produced else catalog.load(name) for name in node.inputs}
                outputs = node.run(inputs)
                produced.update(outputs)
                if rank == 0:
                    for name, value in outputs.items():
                        catalog.save(name, value)
                    logger.info("rank 0 saved %s", ", ".join(outputs))
                dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
