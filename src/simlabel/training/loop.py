"""The SimLabel training loop: read it top to bottom.

Skip, SimLabel, SimLabel + confidence and the crowd baselines' classifiers are this one loop
with different parameters (``unlabeled_weight`` = 0 for Skip; ``cycling`` on for confidence
cycling; fixed soft targets for a baseline), so comparisons between them are fair: same model,
data order, schedule and early stopping. The pieces live beside it: ``TrainConfig``
(config.py), batch target strategies (targets.py), ``ConfidenceCycler`` (core/cycling.py) and
``TrainState`` (state.py).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from simlabel.choices import ROW_UPDATES_PER_ENTRY
from simlabel.core.cycling import ConfidenceCycler
from simlabel.core.kappa import CoLabelCounts, transport_matrices
from simlabel.core.label_rows import LabelRows, batch_entries
from simlabel.core.labels import LabelTable, as_label_table
from simlabel.core.losses import simlabel_loss
from simlabel.core.metrics import accuracy_from_counts, mean_accuracy, mean_of_annotators
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.core.similarity import model_informed_kappa
from simlabel.core.soft_labels import has_labellers, soft_labels
from simlabel.models.factory import evaluates_entries, model_from_args
from simlabel.runtime import distributed_rank_and_size, resolve_device
from simlabel.training.config import TrainConfig
from simlabel.training.optim import (
    AnnotatorRowsAdamW,
    FusedAdamW,
    WarmupCosine,
    fused_adamw_supported,
    warmup_cosine,
)
from simlabel.training.state import SaveThrottle, TrainState, fingerprint
from simlabel.training.targets import batch_targets, mean_probability

logger = logging.getLogger(__name__)
# Annotators past which a dense-step run suggests the sampled step: a step's heads then cost
# ~B x A x hidden x C, e.g. 128 x 1,000 x 128 x 10 = 164M multiply-adds forward alone.
DENSE_STEP_WARNING = 1000
# Up to this many annotators the steps index a dense (A, A) float32 similarity (64 MB at 4,096):
# a sampled step's 1,024 x 3 pair lookups took 0.63 ms sparse (searchsorted, prior, where)
# against 0.076 ms in a matrix (2,000 annotators, one thread), ~8 % of a CIFAR-10N step.
DENSE_SIMILARITY_MAX = 4096
__all__ = ["BatchSource", "RunData", "TrainConfig", "TrainingResult", "predict_labels", "predict_log_proba",
           "train_annotator_models", "model_from_checkpoint"]


class BatchSource:
    """Rows of the model inputs on the device: a tensor already there, or an array (e.g. a
    memory map of uint8 frames) copied batch by batch."""

    def __init__(self, data, device: torch.device):
        self.data, self.device = data, device

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        if isinstance(self.data, torch.Tensor):
            # index_select, not data[rows]: 29 against 121 us for a batch of 128 of CIFAR-10N's
            # (50000, 1, 1280) embeddings on the CPU (one thread), the same rows.
            return self.data.index_select(0, torch.as_tensor(rows, device=self.data.device))
        batch = torch.from_numpy(np.array(self.data[rows]))
        if self.device.type == "cuda":  # pinned host memory: asynchronous copies to the GPU
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch


@dataclass
class RunData:
    """What one run trains on, on the device.

    inputs : model inputs per item (embeddings, or frames when fine-tuning).
    train_table, val_table : the labels of the training / validation items (``LabelTable``).
    train_items, val_items : item rows with a training target / a validation label.
    fixed_soft : (N, A, C) fixed soft targets or None.
    label_rows, val_label_rows : the training / validation labels as compressed rows where they
        are read (``with_label_rows``): the training ones by the sampled steps, the validation ones
        wherever the model evaluates single entries (validation O(labels) per epoch, not
        O(items x A)); else None.

    ``train_labels`` / ``val_labels`` (numpy) and ``y_train`` (on the device) are the (N, A)
    matrices of the two tables, ``MISSING`` elsewhere: built on first use, by what still reads
    the matrix (the dense steps, which keep their (B, A) rows on the device, and the validation
    of models that cannot evaluate single entries); a sampled run never builds them.
    """

    inputs: BatchSource
    train_table: LabelTable
    val_table: LabelTable
    train_items: np.ndarray
    val_items: np.ndarray
    fixed_soft: torch.Tensor | None
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    device: torch.device
    label_rows: LabelRows | None = None
    val_label_rows: LabelRows | None = None

    @functools.cached_property
    def train_labels(self) -> np.ndarray:
        return self.train_table.to_numpy()

    @functools.cached_property
    def val_labels(self) -> np.ndarray:
        return self.val_table.to_numpy()

    @functools.cached_property
    def y_train(self) -> torch.Tensor:
        return torch.from_numpy(self.train_labels).to(self.device)


@dataclass
class TrainingResult:
    model: torch.nn.Module
    model_args: dict
    history: pd.DataFrame
    best_epoch: int
    best_val_accuracy: float
    similarity: np.ndarray | PairSimilarity
    cycler: ConfidenceCycler | None
    inputs: BatchSource
    eval_batch_size: int

    @property
    def imputed(self):
        """The imputed labels (``ImputedLabels``) of a cycling run, else None."""
        return self.cycler.imputed if self.cycler is not None else None

    def log_proba(self, rows: np.ndarray):
        """Yield (row indices, (b, A, C) log-probabilities) of the trained model over ``rows``."""
        yield from predict_log_proba(self.model, self.inputs, rows, self.eval_batch_size)

    def evaluates_entries(self) -> bool:
        """Whether the model evaluates single (item, annotator) entries (``factory.evaluates_entries``)."""
        return evaluates_entries(self.model_args)

    @torch.no_grad()
    def log_proba_at(self, table: LabelTable):
        """Yield (lo, hi, (hi - lo, C) log-probabilities) at the entries ``lo:hi`` of ``table``,
        batch by batch of its labelled items: evaluated at those entries alone where the model
        can (O(labels), not O(items x A): 100,000 items x 2,000 annotators would be 2 x 10^9
        outputs), else taken from the (b, A, C) output."""
        starts = table.starts()
        rows = np.flatnonzero(np.diff(starts))
        at_entries = self.evaluates_entries()
        self.model.eval()
        for first in range(0, len(rows), self.eval_batch_size):
            batch = rows[first : first + self.eval_batch_size]
            lo, hi = int(starts[batch[0]]), int(starts[batch[-1] + 1])  # sorted by item: contiguous
            inputs = self.inputs[batch]
            items = torch.from_numpy(np.searchsorted(batch, table.items[lo:hi])).to(inputs.device)
            annotators = torch.from_numpy(table.annotators[lo:hi]).to(inputs.device)
            yield lo, hi, self.model(inputs, items, annotators) if at_entries else self.model(inputs)[items, annotators]


def prepare_data(tokens, labels: LabelTable | np.ndarray, train_rows, val_rows, config, device, frames=None,
                 soft_targets=None) -> RunData:
    """Validate the inputs and move what training needs to the device (see ``RunData``);
    ``labels``: a ``LabelTable`` or the (N, A) matrix."""
    labels = as_label_table(labels)
    n_items, n_annotators = labels.shape
    if tokens.shape[0] != n_items:
        raise ValueError(f"tokens have {tokens.shape[0]} rows but the label matrix has {n_items} items")
    train_rows, val_rows = np.asarray(train_rows, bool), np.asarray(val_rows, bool)
    train_table, val_table = labels.of_items(train_rows), labels.of_items(val_rows)
    trainable = np.bincount(train_table.items, minlength=n_items) > 0
    fixed_soft = None
    if soft_targets is not None:
        if soft_targets.shape[:2] != (n_items, n_annotators):
            raise ValueError(f"soft_targets must be ({n_items}, {n_annotators}, C), got {soft_targets.shape}")
        soft_targets = np.where(train_rows[:, None, None], soft_targets, 0.0)
        trainable |= soft_targets.sum((1, 2)) > 0
        fixed_soft = torch.from_numpy(np.asarray(soft_targets, dtype=np.float32)).to(device)
    train_items = np.flatnonzero(trainable)
    if train_items.size == 0:
        raise ValueError("no training item has a label: check the split and the label matrix")
    pooled = torch.from_numpy(np.asarray(tokens, dtype=np.float32)[train_items].mean(1))
    if config.finetune_backbone:
        if frames is None or len(frames) != n_items:
            raise ValueError("finetune_backbone needs the (N, K, H, W, 3) frames of every item")
        inputs = BatchSource(frames, device)
    else:
        inputs = BatchSource(torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32)).to(device), device)
    return RunData(
        inputs, train_table, val_table, train_items, np.unique(val_table.items), fixed_soft, pooled.mean(0),
        pooled.std(0) if len(train_items) > 1 else torch.ones_like(pooled[0]), device,
    )


def with_label_rows(data: RunData, device, train: bool = True) -> RunData:
    """``data`` with its validation labels (and, with ``train``, its training labels) as
    compressed rows as well."""
    return dataclasses.replace(data, label_rows=LabelRows.from_table(data.train_table, device) if train else None,
                               val_label_rows=LabelRows.from_table(data.val_table, device))


@dataclass
class Optimisation:
    """AdamW (the frame encoder at its own learning rate), warm-up + cosine schedule, gradient
    clipping and, on CUDA, mixed precision: ``step(loss)`` is one update."""

    model: torch.nn.Module
    optimizer: FusedAdamW | torch.optim.AdamW
    scheduler: WarmupCosine
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    grad_clip: float
    rows: AnnotatorRowsAdamW | None = None  # the per-annotator parameters, updated by rows

    @classmethod
    def create(cls, model: torch.nn.Module, config: TrainConfig, total_steps: int, device: torch.device,
               row_updates: bool = False) -> Optimisation:
        encoder = getattr(model, "encoder", None)
        encoder_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
        groups = [{"params": [p for p in model.parameters() if id(p) not in encoder_ids], "lr": config.learning_rate}]
        if encoder is not None:
            groups.append({"params": list(encoder.parameters()), "lr": config.backbone_learning_rate})
        # torch's fused kernel (1.3 ms against 3.7 ms for the per-tensor loops on CIFAR-10N's 1.1 M
        # heads parameters, one thread), without torch.optim's import of torch._dynamo (optim.py).
        adamw = FusedAdamW if fused_adamw_supported(model.parameters()) else torch.optim.AdamW
        optimizer = adamw(groups, weight_decay=config.weight_decay)
        scheduler = WarmupCosine(optimizer, warmup_cosine(total_steps, config.warmup_fraction))
        amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
        use_amp = config.mixed_precision and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        if row_updates and scaler.is_enabled():
            raise ValueError("head_updates: rows does not combine with fp16 loss scaling; set mixed_precision: false "
                             "or head_updates: dense")
        rows = AnnotatorRowsAdamW(model, weight_decay=config.weight_decay) if row_updates else None
        return cls(model, optimizer, scheduler, scaler, amp_dtype if use_amp else None, config.grad_clip, rows)

    def stepped(self, model):
        """``model`` as a training step calls it: through the rows optimiser where there is one."""
        return model if self.rows is None else functools.partial(self.rows.call, model)

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        rows = self.rows.gradients() if self.rows is not None else []
        torch.nn.utils.clip_grad_norm_([*self.model.parameters(), *rows], self.grad_clip)
        if self.rows is not None:  # at the rate the main optimiser steps with (before the schedule moves)
            self.rows.step(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def flush(self) -> None:
        """Bring every annotator's row up to date (row updates apply the steps a row sat out lazily)."""
        if self.rows is not None:
            self.rows.flush()

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rows": self.rows.state_dict() if self.rows is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.rows is not None:
            self.rows.load_state_dict(state["rows"])


def train_epoch(trained, data: RunData, targets, optimisation: Optimisation, sim, transport, cycler, config, order,
                rank: int = 0, world: int = 1) -> tuple[float, float, float]:
    """One pass over the training items in a seeded random order: mean loss, CE and KL per step."""
    device = data.device
    trained.train()
    steps = math.ceil(len(data.train_items) / config.batch_size)
    totals = torch.zeros(3, device=device)  # summed on the device: no host sync per step
    perm = data.train_items[torch.randperm(len(data.train_items), generator=order).numpy()]
    hard_rows, stepped = data.label_rows, optimisation.stepped(trained)
    if not targets.dense_rows and config.imputed_as_targets and cycler is not None and cycler.n_imputed:
        hard_rows = LabelRows.from_table(cycler.merged_table(), device)
    for lo in range(0, len(perm), config.batch_size):
        rows = perm[lo : lo + config.batch_size][rank::world][: max(1, config.batch_size // world)]
        if targets.dense_rows:
            y_batch = data.y_train.index_select(0, torch.from_numpy(rows).to(device))
            hard = y_batch
            if config.imputed_as_targets and cycler is not None:
                hard = torch.from_numpy(cycler.imputed.merged_with(data.train_table, rows)).to(device)
        else:  # compressed rows: a step never touches all A annotators of its items
            y_batch, hard = data.label_rows, hard_rows
        with optimisation.autocast(device):
            log_p, hard, p_soft, has_soft = targets(stepped, data.inputs[rows], rows, y_batch, hard, sim, transport)
        loss, parts = simlabel_loss(log_p, hard, p_soft, has_soft, config.unlabeled_weight)
        optimisation.step(loss)
        totals += torch.stack([loss.detach(), parts["ce"], parts["kl"]]) / steps
    optimisation.flush()  # the weights are read next (validation, the saved state)
    return tuple(totals.tolist())


def train_annotator_models(
    tokens: np.ndarray, labels: np.ndarray | LabelTable, train_rows: np.ndarray, val_rows: np.ndarray,
    similarity: np.ndarray | PairSimilarity, n_classes: int, config: TrainConfig, frames: np.ndarray | None = None, soft_targets: np.ndarray | None = None,
) -> TrainingResult:
    """Train one model per annotator with similarity-weighted soft labels.

    tokens : (N, T, D) float32 inputs (T = 1 for features); with ``finetune_backbone`` they only
        give the standardisation statistics and ``frames`` (N, K, H, W, 3) uint8 are the inputs.
    labels : ``LabelTable`` or (N, A) int64 matrix, ``MISSING`` = -1; train_rows, val_rows : (N,) bool
        item masks.
    similarity : (A, A) from the training labels, an array or a ``PairSimilarity`` (kept sparse
        where the steps only look pairs up: sampled steps without cycling); n_classes : C.
    config : the recipe; with ``state_path`` the state is saved after every epoch (``SaveThrottle``:
        at most 5 % of the time goes to saving; the last epoch is always saved) and ``resume``
        continues from it. soft_targets : (N, A, C) fixed targets (``FixedTargets``, for the
        crowd baselines; rows summing to 0 = none).

    Under ``torchrun`` every rank trains on its share of each epoch (DDP); imputations are
    gathered so every rank holds the same imputed labels and similarity. Returns the best model
    by validation mean per-annotator accuracy, the history, the final similarity and the cycler.
    """
    labels = as_label_table(labels)
    n_annotators = labels.shape[1]
    if similarity.shape != (n_annotators, n_annotators):
        raise ValueError(f"similarity must be ({n_annotators}, {n_annotators}), got {similarity.shape}")
    device = resolve_device(config.device)
    rank, world = distributed_rank_and_size()
    torch.manual_seed(config.seed)
    generators = {"order": torch.Generator().manual_seed(config.seed), "entries": torch.Generator().manual_seed(config.seed + 1)}
    data = prepare_data(tokens, labels, train_rows, val_rows, config, device, frames, soft_targets)

    model_args = config.model_args(tokens.shape[-1], tokens.shape[1], n_annotators, n_classes)
    model = model_from_args(model_args, data.feature_mean, data.feature_std).to(device)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    steps_per_epoch = math.ceil(len(data.train_items) / config.batch_size)
    targets = batch_targets(config, data.fixed_soft, generators["entries"])
    optimisation = Optimisation.create(model, config, config.max_epochs * steps_per_epoch, device,
                                       row_updates=uses_row_updates(config, targets, n_annotators, world,
                                                                    labels_per_item(data.train_table)))
    warmup_epochs = math.ceil(config.warmup_fraction * config.max_epochs)
    eval_batch = config.batch_size if config.finetune_backbone else 512
    if targets.dense_rows and n_annotators >= DENSE_STEP_WARNING and rank == 0:
        logger.warning(
            "%s%d annotators: each dense step evaluates every one of them on every item of its batch; "
            "training.soft_entries_per_item: 8 evaluates the labelled entries and 8 drawn ones per item "
            "(the same soft labels in expectation; README, \"Scale\")", _named(config.run_name), n_annotators)
    if not targets.dense_rows or evaluates_entries(model_args):
        # validation at the labelled entries alone wherever the model can: a dense validation
        # evaluates every annotator of every validation item (CIFAR-10N: 10,000 x 747) each epoch
        data = with_label_rows(data, device, train=not targets.dense_rows)
    sim = similarity_tensor(similarity, device, dense=targets.dense_rows or config.cycling)
    cycler = ConfidenceCycler(
        data.train_table, n_classes, config.min_overlap, config.threshold, config.confidence_formula, config.refresh,
        track_counts=config.refresh != "models" or config.soft_label_transport,
    ) if config.cycling else None

    run_id = fingerprint(config, tokens, labels, train_rows, val_rows) if config.state_path else ""
    state, throttle = TrainState(), SaveThrottle()
    if config.resume and config.state_path and Path(config.state_path).is_file():
        state, saved = TrainState.load(config.state_path, run_id, device)
        sim = restore(saved, model, optimisation, generators, cycler, device, sim)
    transport = label_transport(cycler, data, n_classes, config, device)

    for epoch in range(state.epoch + 1, config.max_epochs + 1):
        if state.stopped(warmup_epochs, config.patience):
            break
        started = time.perf_counter()
        loss, ce, kl = train_epoch(trained, data, targets, optimisation, sim, transport, cycler, config,
                                   generators["order"], rank, world)
        n_imputed = 0
        if cycler is not None and epoch % config.cycle_every == 0:
            proposed, predicted = propose(model, data, sim, transport, cycler, config, eval_batch, rank, world)
            n_imputed, refreshed = len(proposed[0]), cycler.apply(proposed, epoch)
            if config.refresh == "models":
                refreshed = model_similarity(model, data, n_classes, config.min_overlap, eval_batch, predicted)
            if refreshed is not None:
                sim = torch.as_tensor(refreshed, dtype=torch.float32, device=device)
                transport = label_transport(cycler, data, n_classes, config, device)
        state.record({"epoch": epoch, "loss": loss, "ce": ce, "kl": kl,
                      "val_mean_accuracy": validation_accuracy(model, data, eval_batch),
                      "lr": optimisation.scheduler.get_last_lr()[0], "imputed_this_cycle": n_imputed,
                      "imputed_total": cycler.n_imputed if cycler else 0,
                      "seconds": time.perf_counter() - started}, model)
        if rank == 0:
            log_epoch(state, config.max_epochs, config.run_name)
        if config.state_path and rank == 0 and throttle.due(time.perf_counter() - started):
            save_state(state, config.state_path, run_id, throttle, model, optimisation, generators, sim, cycler, device)
    if config.state_path and rank == 0 and throttle.pending:
        save_state(state, config.state_path, run_id, throttle, model, optimisation, generators, sim, cycler, device)
    if rank == 0 and state.stopped(warmup_epochs, config.patience):
        logger.info("%searly stop: no validation improvement for %d epochs", _named(config.run_name), config.patience)
    if rank == 0 and data.val_items.size == 0:
        logger.warning("no validation labels: no early stopping, the last epoch's model is kept")

    model.load_state_dict(state.best_weights if data.val_items.size else model.state_dict())
    model.eval()
    return TrainingResult(model, model_args, pd.DataFrame(state.history), state.best_epoch, state.best_accuracy,
                          sim.cpu().numpy().astype(np.float64) if isinstance(sim, torch.Tensor) else similarity,
                          cycler, data.inputs, eval_batch)


def uses_row_updates(config: TrainConfig, targets, n_annotators: int, world: int, labels_per_item: float) -> bool:
    """Whether the per-annotator parameters are updated by rows (``head_updates``): sampled steps
    only (a dense step evaluates every annotator), one process (DDP reduces whole gradients);
    ``auto`` where A >= ``ROW_UPDATES_PER_ENTRY`` x the entries a step evaluates (below it a step
    touches most annotators anyway and the gathers cost more than they save)."""
    if config.head_updates == "dense" or targets.dense_rows:
        return False
    if world > 1:
        if config.head_updates == "rows":
            raise ValueError("head_updates: rows runs in one process; under torchrun use head_updates: dense")
        return False
    entries_per_step = config.batch_size * (labels_per_item + (config.soft_entries_per_item or 0))
    return config.head_updates == "rows" or n_annotators >= ROW_UPDATES_PER_ENTRY * entries_per_step


def labels_per_item(table: LabelTable) -> float:
    """Mean labels of the items that have any."""
    return len(table) / max(int((np.diff(table.starts()) > 0).sum()), 1)


def similarity_tensor(similarity: np.ndarray | PairSimilarity, device: torch.device, dense: bool):
    """The similarity the steps index, on ``device``: a dense (A, A) float32 tensor where steps read
    whole rows of it (dense steps, cycling's soft labels), where it is small
    (``DENSE_SIMILARITY_MAX``) or a matrix already; else a ``PairSimilarityTensor`` (evidence pairs
    + prior, O(pairs + A)) that the sampled step looks pairs up in."""
    if isinstance(similarity, PairSimilarity) and not dense and similarity.n_annotators > DENSE_SIMILARITY_MAX:
        return similarity.tensor(device)
    return torch.tensor(np.asarray(similarity, dtype=np.float32), device=device)


def _named(run_name: str) -> str:
    """Log-line prefix naming the run (methods train in parallel processes)."""
    return f"{run_name}: " if run_name else ""


def log_epoch(state: TrainState, max_epochs: int, run_name: str = "") -> None:
    row = state.history[-1]
    logger.info("%sepoch %3d/%d  loss %.4f (ce %.4f, kl %.4f)  val acc %.3f  best %.3f @ %d  imputed %d  %.2fs",
                _named(run_name), row["epoch"], max_epochs, row["loss"], row["ce"], row["kl"], row["val_mean_accuracy"],
                state.best_accuracy, state.best_epoch, row["imputed_total"], row["seconds"])


def label_transport(cycler, data: RunData, n_classes, config, device) -> torch.Tensor | None:
    """Pairwise label transport from the current co-label counts (``soft_label_transport``)."""
    if not config.soft_label_transport:
        return None
    counts = cycler.counts if cycler is not None else CoLabelCounts(data.train_table, n_classes)
    matrices = transport_matrices(counts.counts, data.train_table.shape[1], n_classes, config.transport_prior)
    return torch.from_numpy(matrices).to(device)


def model_similarity(model, data: RunData, n_classes: int, min_overlap: int, batch_size: int,
                     predicted: np.ndarray | None = None) -> np.ndarray:
    """``refresh: models``: observed kappa shrunk towards the models' kappa on the training items
    (``predicted``: the models' (len(train_items), A) labels there, if already at hand)."""
    if predicted is None:
        predicted = predict_labels(model, data.inputs, data.train_items, batch_size)
    return model_informed_kappa(data.train_table, predicted, n_classes, min_overlap)


def validation_accuracy(model, data: RunData, batch_size: int) -> float:
    """Mean per-annotator accuracy on the validation labels (NaN without any)."""
    if data.val_items.size == 0:
        return float("nan")
    if data.val_label_rows is not None:
        return mean_accuracy_at_entries(model, data.inputs, data.val_label_rows, data.val_items, batch_size)
    return mean_accuracy(predict_labels(model, data.inputs, data.val_items, batch_size), data.val_labels[data.val_items])


@torch.no_grad()
def mean_accuracy_at_entries(model, inputs, labels: LabelRows, rows: np.ndarray, batch_size: int = 512) -> float:
    """``mean_accuracy`` over items ``rows``, the models evaluated at the labelled entries only
    (``model(inputs, items, annotators)``, the entry architectures)."""
    model.eval()
    correct = np.zeros(labels.n_annotators, np.int64)
    n_labels = np.zeros(labels.n_annotators, np.int64)
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo : lo + batch_size]
        index, valid, values = labels.batch(batch)
        items, annotators = batch_entries(index, valid)
        hits = model(inputs[batch], items, annotators).argmax(-1) == values[valid]
        correct += torch.bincount(annotators[hits], minlength=labels.n_annotators).cpu().numpy()
        n_labels += torch.bincount(annotators, minlength=labels.n_annotators).cpu().numpy()
    return mean_of_annotators(accuracy_from_counts(correct, n_labels), n_labels)


def propose(model, data: RunData, sim, transport, cycler, config, batch_size, rank, world) -> tuple:
    """This cycle's confident imputations (SPEC section 4), gathered from every rank: from the
    pooled soft labels (the paper) or, with ``impute_from: own_prediction``, from each missing
    annotator's own model (its learned tendency, not a copy of the labellers' labels). Also the
    models' predicted labels on every training item, which ``refresh: models`` reads (None with
    several ranks: each saw only its share)."""
    parts, predicted = [], []
    for rows, log_p in predict_log_proba(model, data.inputs, data.train_items[rank::world], batch_size):
        labels = torch.from_numpy(data.train_table.rows_dense(rows)).to(log_p.device)
        if config.impute_from == "own_prediction":  # no pooled soft label is read: skip them
            p_soft, has_soft = mean_probability(log_p), has_labellers(labels)
        else:
            p_soft, has_soft = soft_labels(mean_probability(log_p), labels, sim, config.soft_label_source, transport)
        parts.append(cycler.propose(rows, p_soft, has_soft))
        predicted.append(log_p.argmax(-1).cpu().numpy())
    chosen = tuple(np.concatenate(column) for column in zip(*parts, strict=True)) if parts else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if world == 1:
        return chosen, np.concatenate(predicted) if predicted else None
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, chosen)
    return tuple(np.concatenate(column) for column in zip(*gathered, strict=True)), None


def save_state(state: TrainState, path, run_id, throttle: SaveThrottle, model, optimisation, generators, sim, cycler,
               device) -> None:
    started = time.perf_counter()
    state.save(path, run_id, snapshot(model, optimisation, generators, sim, cycler, device))
    throttle.saved(time.perf_counter() - started)


def snapshot(model, optimisation: Optimisation, generators, sim, cycler, device) -> dict:
    """Everything but ``TrainState`` that a resumed run needs, as tensors and plain values."""
    return {
        "model": model.state_dict(), "optimisation": optimisation.state_dict(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "generators": {name: g.get_state() for name, g in generators.items()},
        # a sparse similarity is never refreshed (no cycling): the run's input, not state
        "similarity": sim.cpu() if isinstance(sim, torch.Tensor) else None,
        "imputed": {k: torch.from_numpy(v) for k, v in cycler.state().items()} if cycler is not None else None,
    }


def restore(saved: dict, model, optimisation: Optimisation, generators, cycler, device, similarity):
    """Load ``snapshot``'s contents in place; returns the similarity in use (``similarity``, the
    run's own, where the snapshot holds none)."""
    model.load_state_dict(saved["model"])
    optimisation.load_state_dict(saved["optimisation"])
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda" and saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    for name, generator in generators.items():
        generator.set_state(saved["generators"][name])
    if cycler is not None:
        cycler.load_state({k: v.numpy() for k, v in saved["imputed"].items()})
    return similarity if saved["similarity"] is None else saved["similarity"].to(device)


@torch.no_grad()
def predict_log_proba(model: torch.nn.Module, inputs, rows: np.ndarray, batch_size: int = 512):
    """Yield (row indices, (b, A, C) log-probabilities) over ``rows`` in eval mode.

    ``inputs``: a tensor on the model's device or a ``BatchSource``."""
    model.eval()
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo : lo + batch_size]
        yield batch, model(inputs[batch])


def predict_labels(model: torch.nn.Module, inputs, rows: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(len(rows), A) argmax predictions."""
    parts = [log_p.argmax(-1).cpu().numpy() for _, log_p in predict_log_proba(model, inputs, rows, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.int64)


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    """Rebuild a trained model (eval mode, CPU) from one architecture's checkpoint payload: its
    stored constructor arguments, then its weights."""
    model = model_from_args(payload["model_args"])
    model.load_state_dict(payload["state_dict"])
    return model.eval()
