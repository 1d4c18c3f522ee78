"""The training state of one run: early stopping, the best weights and, for resuming after a
crash, everything else the loop needs to continue bit-identically.

Saved with ``torch.save`` as plain tensors, numbers and lists (loaded with
``weights_only=True``: no pickled objects), atomically, after every epoch. The state records a
fingerprint of the data and of the parameters that shape training: resuming a run with other
data or parameters is an error, never a silent reuse of the old run.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from simlabel.atomic import atomic_path

logger = logging.getLogger(__name__)
# Fields that do not change what is trained.
_NOT_FINGERPRINTED = {"state_path", "resume", "device", "mixed_precision", "run_name"}


class StaleStateError(ValueError):
    """A saved training state that belongs to another run."""


def fingerprint(config, tokens: np.ndarray, labels, train_rows: np.ndarray, val_rows: np.ndarray) -> str:
    """Hash of the training-relevant parameters, the labels (a ``LabelTable``), the split and a
    sample of the inputs."""
    digest = hashlib.sha256()
    params = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_FINGERPRINTED}
    digest.update(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(str(labels.shape).encode())
    for array in (labels.items, labels.annotators, labels.labels, train_rows, val_rows):
        digest.update(np.ascontiguousarray(array).tobytes())
    step = max(1, len(tokens) // 64)  # a strided sample: cheap on memory-mapped inputs
    digest.update(str(tokens.shape).encode())
    digest.update(np.ascontiguousarray(np.asarray(tokens[::step], dtype=np.float32)).tobytes())
    return digest.hexdigest()


@dataclass
class TrainState:
    """Progress of a run: the last finished epoch, the best validation accuracy and its weights,
    one history row per epoch."""

    epoch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    best_weights: dict | None = None
    history: list[dict] = field(default_factory=list)

    def record(self, row: dict, model: torch.nn.Module) -> None:
        """Close epoch ``row["epoch"]``; keep the weights if validation improved (or none kept yet).
        A NaN validation accuracy (no validation labels) never improves: the first epoch is kept."""
        self.epoch = row["epoch"]
        accuracy = row["val_mean_accuracy"]
        if accuracy > self.best_accuracy or self.best_weights is None:
            self.best_accuracy, self.best_epoch = accuracy, self.epoch
            self.best_weights = copy.deepcopy(model.state_dict())
        self.history.append(row)

    def stopped(self, warmup_epochs: int, patience: int) -> bool:
        """Patience starts after warm-up: a model still at a tiny learning rate is not converged."""
        return self.epoch > warmup_epochs and self.epoch - max(self.best_epoch, warmup_epochs) >= patience

    def save(self, path: str | Path, run_fingerprint: str, training: dict) -> None:
        """Write this state and ``training`` (the loop's state dicts, RNG states, similarity and
        imputations: tensors and plain values) atomically."""
        payload = {"fingerprint": run_fingerprint, **dataclasses.asdict(self), "training": training}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, run_fingerprint: str, device: torch.device) -> tuple[TrainState, dict]:
        """The saved state and its ``training`` dict; ``StaleStateError`` if it is another run's."""
        payload = torch.load(path, map_location=device, weights_only=True)
        if payload.get("fingerprint") != run_fingerprint:
            raise StaleStateError(
                f"the training state {path} was saved by a run with other data or parameters: "
                "resume only continues the same run. Delete the file (or set training.resume=false) "
                "to start afresh."
            )
        fields = {f.name for f in dataclasses.fields(cls)}
        state = cls(**{k: v for k, v in payload.items() if k in fields})
        logger.info("resuming from %s after epoch %d", path, state.epoch)
        return state, payload["training"]


class SaveThrottle:
    """When to save the training state: after every epoch unless saving would cost more than
    ``share`` of the run. A save is due once the training time since the last save is at least
    ``(1 - share) / share`` times the last save's duration (the first epoch always saves). A
    crash loses at most that much training, and a resumed run is still exact: it continues from
    the last saved epoch."""

    def __init__(self, share: float = 0.05):
        self.share, self.cost, self.since = share, 0.0, 0.0

    def due(self, epoch_seconds: float) -> bool:
        """Count one more epoch of ``epoch_seconds``; True if the state should be saved now."""
        self.since += epoch_seconds
        return self.since * self.share >= self.cost * (1.0 - self.share)

    def saved(self, seconds: float) -> None:
        self.cost, self.since = seconds, 0.0

    @property
    def pending(self) -> bool:
        """True if an epoch was trained since the last save."""
        return self.since > 0

