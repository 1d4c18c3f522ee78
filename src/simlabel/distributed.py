"""Run pipelines on several GPUs / nodes with PyTorch DistributedDataParallel.

    torchrun --standalone --nproc_per_node=<gpus> -m simlabel.distributed
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-endpoint=<host:port> -m simlabel.distributed \\
        --pipelines training --params "training.batch_size=256"

Every rank runs ``kedro run`` with the given options (default ``--pipelines training``), through
Kedro's own CLI, session and runner. The training loop shards each epoch's items over the
ranks, averages gradients (DDP) and all-gathers confident imputations, so every rank holds the
same model, imputed labels and similarity; ``hooks.RankZeroSavesHooks`` lets rank 0 alone write
the outputs. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

logger = logging.getLogger("simlabel.distributed")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(arg.startswith(("--pipeline", "-p")) for arg in argv):
        argv = ["--pipelines", "training", *argv]
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        from kedro.framework.cli.cli import KedroCLI

        KedroCLI(project_path=Path.cwd())(args=["run", *argv], standalone_mode=False)
        dist.barrier()
        if dist.get_rank() == 0:
            logger.info("rank 0 saved the outputs of %d ranks' run", dist.get_world_size())
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
