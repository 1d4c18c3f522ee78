"""The SimLabel training loop: read it top to bottom.

Skip, SimLabel and SimLabel + confidence are this one loop with different parameters
(``unlabeled_weight`` = 0 for Skip; ``cycling`` on for confidence cycling), so comparisons
between them are fair: same model, data order, schedule and early stopping.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from simlabel.atomic import atomic_path
from simlabel.core.cycling import ImputedLabels, apply_imputations, propose_imputations
from simlabel.core.kappa import CoLabelCounts, transport_matrices
from simlabel.core.labels import MISSING
from simlabel.core.losses import simlabel_loss
from simlabel.core.metrics import mean_accuracy
from simlabel.core.soft_labels import (
    CONFIDENCE_FORMULAS,
    SOFT_LABEL_SOURCES,
    confidence,
    labeller_index,
    soft_labels,
    weighted_soft_labels,
)
from simlabel.models.annotators import ARCHITECTURES, ENTRY_ARCHITECTURES, EndToEnd, build_model
from simlabel.models.backbones import load_backbone

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Every knob of the recipe (SPEC section 6) and of the method (sections 2-4)."""

    architecture: str = "heads"
    hidden: int = 128
    head_hidden: int = 0
    dropout: float = 0.2
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 25
    warmup_fraction: float = 0.2
    grad_clip: float = 1.0
    unlabeled_weight: float = 1.0
    soft_label_source: str = "predictions"
    soft_label_transport: bool = False  # carry labellers' predictions through pairwise confusions
    transport_prior: float = 1.0
    # Many annotators: per step, each item's KL term uses this many of its soft-labelled missing
    # entries, drawn at random (an unbiased estimate of the mean); only those entries and the
    # observed ones are evaluated. None = every entry (the paper). heads / madl / padl only.
    soft_entries_per_item: int | None = None
    seed: int = 0
    device: str = "auto"
    # Confidence cycling (SPEC section 4).
    cycling: bool = False
    threshold: float = 0.6
    confidence_formula: str = "product"
    cycle_every: int = 1
    imputed_as_targets: bool = False
    min_overlap: int = 2
    architecture_options: dict = field(default_factory=dict)  # {architecture: {option: value}}
    # End-to-end fine-tuning of the frame encoder (GPU use): inputs are frames, not embeddings.
    finetune_backbone: bool = False
    backbone: str = "efficientnet_lite0"
    backbone_learning_rate: float = 1e-4
    mixed_precision: bool = True  # bf16 / fp16 autocast on CUDA; ignored on CPU
    state_path: str | None = None  # full training state written here after every epoch
    resume: bool = False  # continue from state_path if it exists

    @classmethod
    def from_params(cls, *overrides: dict) -> TrainConfig:
        """Merge parameter dicts (later ones win) into a validated config."""
        merged: dict = {}
        for params in overrides:
            merged.update(params or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"unknown training parameters {unknown}; known: {sorted(known)}")
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        checks = [
            (self.architecture in ARCHITECTURES, f"architecture must be one of {sorted(ARCHITECTURES)}"),
            (self.soft_label_source in SOFT_LABEL_SOURCES, f"soft_label_source must be one of {SOFT_LABEL_SOURCES}"),
            (self.confidence_formula in CONFIDENCE_FORMULAS, f"confidence_formula must be one of {CONFIDENCE_FORMULAS}"),
            (self.unlabeled_weight >= 0, "unlabeled_weight must be >= 0"),
            (0 <= self.threshold <= 1, "threshold must be in [0, 1]"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
            (self.batch_size > 0 and self.max_epochs > 0 and self.patience > 0, "batch_size, max_epochs, patience must be > 0"),
            (self.cycle_every > 0, "cycle_every must be > 0"),
            (
                self.soft_entries_per_item is None
                or (self.soft_entries_per_item > 0 and self.architecture in ENTRY_ARCHITECTURES),
                f"soft_entries_per_item must be > 0 and needs one of {ENTRY_ARCHITECTURES}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message} (config: {dataclasses.asdict(self)})")


class BatchSource:
    """Rows of the model inputs on the device: a tensor already there, or an array (e.g. a
    memory map of uint8 frames) copied batch by batch."""

    def __init__(self, data, device: torch.device):
        self.data, self.device = data, device

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        if isinstance(self.data, torch.Tensor):
            return self.data[torch.as_tensor(rows, device=self.data.device)]
        batch = torch.from_numpy(np.array(self.data[rows]))
        if self.device.type == "cuda":  # pinned host memory: asynchronous copies to the GPU
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch


@dataclass
class TrainingResult:
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_accuracy: float
    similarity: np.ndarray
    imputed: ImputedLabels | None
    inputs: BatchSource
    eval_batch_size: int

    def log_proba(self, rows: np.ndarray):
        """Yield (row indices, (b, A, C) log-probabilities) of the trained model over ``rows``."""
        yield from predict_log_proba(self.model, self.inputs, rows, self.eval_batch_size)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def warmup_cosine(total_steps: int, warmup_fraction: float):
    """LR multiplier: linear warm-up over the first ``warmup_fraction`` of steps, then cosine to 0."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


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


def train_annotator_models(
    tokens: np.ndarray,
    labels: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    similarity: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    frames: np.ndarray | None = None,
    soft_targets: np.ndarray | None = None,
) -> TrainingResult:
    """Train one model per annotator with similarity-weighted soft labels.

    Under ``torchrun`` (an initialised ``torch.distributed`` process group) every rank trains
    on its share of each epoch's items through DistributedDataParallel; imputations are
    gathered from all ranks so every rank holds the same imputed labels, co-label counts and
    similarity.

    Parameters
    ----------
    tokens : (N, T, D) float32 inputs (T frames / tokens; T = 1 for plain features). With
        ``config.finetune_backbone`` they only give the input standardisation statistics.
    labels : (N, A) int64 observed labels, ``MISSING`` = -1.
    train_rows, val_rows : (N,) bool item masks; only training labels are trained on.
    similarity : (A, A) annotator similarity from the training labels.
    n_classes : C.
    config : the recipe. With ``state_path`` set, the full training state is written there
        (atomically) after every epoch, and ``resume`` continues from it.
    frames : (N, K, H, W, 3) uint8, the model's inputs when ``config.finetune_backbone``
        (read batch by batch, so a memory map works).
    soft_targets : (N, A, C) fixed soft labels used instead of the similarity-weighted ones
        (rows summing to 0 = none), e.g. to train a classifier on Dawid-Skene posteriors.

    Returns
    -------
    TrainingResult with the best model (by validation mean per-annotator accuracy), the
    per-epoch history, the final similarity (refined if cycling) and the imputed labels.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_items, n_annotators = labels.shape
    if tokens.shape[0] != n_items:
        raise ValueError(f"tokens have {tokens.shape[0]} rows but the label matrix has {n_items} items")
    if similarity.shape != (n_annotators, n_annotators):
        raise ValueError(f"similarity must be ({n_annotators}, {n_annotators}), got {similarity.shape}")
    device = resolve_device(config.device)
    rank, world = distributed_rank_and_size()
    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed)
    entry_draws = torch.Generator().manual_seed(config.seed + 1)

    # --- data: training labels only; everything small enough lives on the device -------------
    train_labels = np.where(np.asarray(train_rows)[:, None], labels, MISSING)
    val_labels = np.where(np.asarray(val_rows)[:, None], labels, MISSING)
    trainable = (train_labels != MISSING).any(1)
    if soft_targets is not None:
        trainable |= np.asarray(train_rows) & (np.asarray(soft_targets).sum((1, 2)) > 0)
    train_items = np.flatnonzero(trainable)
    val_items = np.flatnonzero((val_labels != MISSING).any(1))
    if train_items.size == 0:
        raise ValueError("no training item has a label: check the split and the label matrix")
    pooled = torch.from_numpy(np.asarray(tokens, dtype=np.float32)[train_items].mean(1)).to(device)
    if config.finetune_backbone:
        if frames is None or len(frames) != n_items:
            raise ValueError("finetune_backbone needs the (N, K, H, W, 3) frames of every item")
        x = BatchSource(frames, device)
    else:
        x = BatchSource(torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32)).to(device), device)
    y_train = torch.from_numpy(train_labels).to(device)
    fixed_soft = None
    if soft_targets is not None:
        if soft_targets.shape != (n_items, n_annotators, n_classes):
            raise ValueError(f"soft_targets must be ({n_items}, {n_annotators}, {n_classes}), got {soft_targets.shape}")
        fixed_soft = torch.from_numpy(np.asarray(soft_targets, dtype=np.float32)).to(device)

    # --- model, optimiser, schedule -------------------------------------------------------
    model = build_model(
        config.architecture,
        in_dim=tokens.shape[-1],
        n_annotators=n_annotators,
        n_classes=n_classes,
        feature_mean=pooled.mean(0),
        feature_std=pooled.std(0) if len(train_items) > 1 else torch.ones_like(pooled[0]),
        hidden=config.hidden,
        head_hidden=config.head_hidden,
        dropout=config.dropout,
        n_tokens=tokens.shape[1],
        **config.architecture_options.get(config.architecture, {}),
    )
    param_groups = [{"params": list(model.parameters()), "lr": config.learning_rate}]
    if config.finetune_backbone:
        encoder = load_backbone(config.backbone).train()
        model = EndToEnd(encoder, model)
        param_groups.append({"params": list(encoder.parameters()), "lr": config.backbone_learning_rate})
    model = model.to(device)
    # Every rank sees batch_size / world items per step, so the effective batch (and the
    # schedule) match a single-process run.
    local_batch = max(1, config.batch_size // world)
    trained = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    eval_batch = config.batch_size if config.finetune_backbone else 512
    optimizer = torch.optim.AdamW(param_groups, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_items) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.max_epochs * steps_per_epoch, config.warmup_fraction)
    )
    warmup_epochs = math.ceil(config.warmup_fraction * config.max_epochs)
    amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    use_amp = config.mixed_precision and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    # --- similarity and confidence-cycling state ------------------------------------------
    sim = torch.tensor(np.asarray(similarity, dtype=np.float32), device=device)
    imputed = ImputedLabels.empty(n_items, n_annotators) if config.cycling else None
    counts = CoLabelCounts(train_labels, n_classes) if config.cycling or config.soft_label_transport else None

    def transport_from_counts():
        if not config.soft_label_transport:
            return None
        matrices = transport_matrices(counts.counts, n_annotators, n_classes, config.transport_prior)
        return torch.from_numpy(matrices).to(device)

    transport = transport_from_counts()
    use_soft = config.unlabeled_weight > 0

    history: list[dict] = []
    best_acc, best_epoch, best_state, first_epoch = -1.0, -1, None, 1
    if config.resume and config.state_path and Path(config.state_path).is_file():
        state = torch.load(config.state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        order.set_state(state["order_rng"])
        entry_draws.set_state(state["entry_rng"])
        best_acc, best_epoch, best_state, history = state["best_acc"], state["best_epoch"], state["best_state"], state["history"]
        sim = state["similarity"].to(device)
        if imputed is not None:
            imputed = ImputedLabels(*state["imputed"])
        if counts is not None:
            counts = state["counts"]
            transport = transport_from_counts()
        first_epoch = state["epoch"] + 1
        logger.info("resumed from %s after epoch %d", config.state_path, state["epoch"])

    for epoch in range(first_epoch, config.max_epochs + 1):
        if history and _stopped_early(history, warmup_epochs, config.patience, best_epoch):
            break
        started = time.perf_counter()
        trained.train()
        totals = {"loss": 0.0, "ce": 0.0, "kl": 0.0}
        perm = train_items[torch.randperm(len(train_items), generator=order).numpy()]
        for lo in range(0, len(perm), config.batch_size):
            rows = perm[lo : lo + config.batch_size][rank::world][:local_batch]
            y_batch = y_train[torch.from_numpy(rows).to(device)]
            targets = y_batch
            if config.imputed_as_targets and imputed is not None:
                targets = torch.from_numpy(imputed.merged_with(train_labels, rows)).to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                if config.soft_entries_per_item and fixed_soft is None:
                    log_p, targets, p_soft, has_soft = sampled_entries(
                        trained, x[rows], targets, y_batch, sim, transport, config, entry_draws
                    )
                else:
                    log_p = trained(x[rows])
            log_p = log_p.float()
            if not config.soft_entries_per_item or fixed_soft is not None:
                # Stochastic models return (S, B, A, C) samples; soft labels use their mean probability.
                probs = log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)
                if fixed_soft is not None:
                    p_soft = fixed_soft[torch.from_numpy(rows).to(device)]
                    has_soft = p_soft.sum(-1) > 0
                elif use_soft:
                    p_soft, has_soft = soft_labels(probs, y_batch, sim, config.soft_label_source, transport)
                else:
                    p_soft, has_soft = None, None
            loss, parts = simlabel_loss(log_p, targets, p_soft, has_soft, config.unlabeled_weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            totals["loss"] += loss.item() / steps_per_epoch
            totals["ce"] += parts["ce"] / steps_per_epoch
            totals["kl"] += parts["kl"] / steps_per_epoch

        n_imputed = 0
        if imputed is not None and epoch % config.cycle_every == 0:
            chosen = _propose(model, x, y_train, train_labels, train_items[rank::world], sim, transport, imputed, config, eval_batch)
            chosen = _gather_imputations(chosen, world)
            n_imputed = apply_imputations(imputed, train_labels, *chosen, epoch, counts)
            if n_imputed:
                sim = torch.as_tensor(counts.kappa(config.min_overlap), dtype=torch.float32, device=device)
                transport = transport_from_counts()

        val_acc = mean_accuracy(predict_labels(model, x, val_items, eval_batch), val_labels[val_items]) if val_items.size else float("nan")
        if val_acc > best_acc or best_state is None:
            best_acc, best_epoch = val_acc, epoch
            best_state = copy.deepcopy(model.state_dict())
        history.append(
            {
                "epoch": epoch,
                **totals,
                "val_mean_accuracy": val_acc,
                "lr": scheduler.get_last_lr()[0],
                "imputed_this_cycle": n_imputed,
                "imputed_total": int((imputed.label != MISSING).sum()) if imputed is not None else 0,
                "seconds": time.perf_counter() - started,
            }
        )
        if rank == 0:
            logger.info(
                "epoch %3d/%d  loss %.4f (ce %.4f, kl %.4f)  val acc %.3f  best %.3f @ %d  imputed %d  %.2fs",
                epoch, config.max_epochs, totals["loss"], totals["ce"], totals["kl"], val_acc, best_acc,
                best_epoch, history[-1]["imputed_total"], history[-1]["seconds"],
            )
        if config.state_path and rank == 0:
            with atomic_path(config.state_path) as tmp:
                torch.save(
                    {
                        "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                        "torch_rng": torch.get_rng_state(), "order_rng": order.get_state(),
                        "entry_rng": entry_draws.get_state(),
                        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        "best_acc": best_acc, "best_epoch": best_epoch, "best_state": best_state, "history": history,
                        "similarity": sim.cpu(), "counts": counts,
                        "imputed": None if imputed is None else (imputed.label, imputed.confidence, imputed.epoch),
                    },
                    tmp,
                )
    if history and _stopped_early(history, warmup_epochs, config.patience, best_epoch) and rank == 0:
        logger.info("early stop: no validation improvement for %d epochs", config.patience)

    model.load_state_dict(best_state)
    model.eval()
    return TrainingResult(
        model=model,
        history=pd.DataFrame(history),
        best_epoch=best_epoch,
        best_val_accuracy=best_acc,
        similarity=sim.cpu().numpy().astype(np.float64),
        imputed=imputed,
        inputs=x,
        eval_batch_size=eval_batch,
    )


def sampled_entries(model, inputs, targets, labels, sim, transport, config, generator):
    """Evaluate only the observed entries and ``soft_entries_per_item`` random soft-labelled
    missing entries per item; returns the loss inputs in the entry layout (E, 1, C).

    The soft label of a sampled entry (i, a) comes from the predictions at the observed entries
    of item i (its labellers), exactly as in the dense computation.
    """
    n_items, n_annotators = labels.shape
    index, valid = labeller_index(labels >= 0)  # (B, L): each item's labellers
    batch_of = torch.arange(n_items, device=labels.device)[:, None].expand_as(index)
    slot_of = torch.arange(index.shape[1], device=labels.device)[None].expand_as(index)
    obs_items, obs_annotators, obs_slots = batch_of[valid], index[valid], slot_of[valid]
    # k random missing annotators per item that has a labeller (random scores, top k).
    scores = torch.rand((n_items, n_annotators), generator=generator).to(labels.device)
    scores = torch.where((labels < 0) & valid.any(1, keepdim=True), scores, -1.0)
    top, picked = scores.topk(min(config.soft_entries_per_item, n_annotators), dim=1)
    keep = top >= 0
    soft_items = torch.arange(n_items, device=labels.device)[:, None].expand_as(picked)[keep]
    soft_annotators = picked[keep]
    items = torch.cat([obs_items, soft_items])
    annotators = torch.cat([obs_annotators, soft_annotators])
    log_p = model(inputs, items, annotators)  # (E, C) or (S, E, C)
    probs = (log_p.exp() if log_p.dim() == 2 else log_p.exp().mean(0)).detach()
    n_obs = obs_items.numel()
    sources = torch.zeros((*index.shape, probs.shape[-1]), device=probs.device, dtype=probs.dtype)
    if config.soft_label_source in ("predictions", "mixed"):
        sources[obs_items, obs_slots] = probs[:n_obs]
    if config.soft_label_source in ("labels", "mixed"):
        one_hot = torch.nn.functional.one_hot(labels[obs_items, obs_annotators], probs.shape[-1]).to(probs.dtype)
        sources[obs_items, obs_slots] = (sources[obs_items, obs_slots] + one_hot) / (2 if config.soft_label_source == "mixed" else 1)
    p_soft_sampled, has_soft_sampled = weighted_soft_labels(
        sim.to(probs.dtype), soft_annotators, index[soft_items], valid[soft_items], sources[soft_items], transport
    )
    p_soft = torch.cat([torch.zeros_like(probs[:n_obs]), p_soft_sampled])
    has_soft = torch.cat([torch.zeros(n_obs, dtype=torch.bool, device=probs.device), has_soft_sampled])
    entry_targets = torch.cat([targets[obs_items, obs_annotators], torch.full_like(soft_items, MISSING)])
    return log_p.unsqueeze(-2), entry_targets[:, None], p_soft[:, None], has_soft[:, None]


def _stopped_early(history: list[dict], warmup_epochs: int, patience: int, best_epoch: int) -> bool:
    """Patience starts after warm-up: a model still at a tiny learning rate is not converged."""
    epoch = history[-1]["epoch"]
    return epoch > warmup_epochs and epoch - max(best_epoch, warmup_epochs) >= patience


def distributed_rank_and_size() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather_imputations(chosen: tuple, world: int) -> tuple:
    """Every rank's proposed imputations, concatenated in rank order on every rank."""
    if world == 1:
        return chosen
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, chosen)
    return tuple(np.concatenate(parts) for parts in zip(*gathered, strict=True))


def _propose(model, x, y_train, train_labels, items, sim, transport, imputed, config, batch_size) -> tuple:
    """Confident soft labels of ``items`` to impute this cycle (SPEC section 4)."""
    parts = []
    for rows, log_p in predict_log_proba(model, x, items, batch_size):
        probs = log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)
        p_soft, has_soft = soft_labels(probs, y_train[torch.from_numpy(rows).to(y_train.device)], sim, config.soft_label_source, transport)
        conf = confidence(p_soft, config.confidence_formula)
        parts.append(
            propose_imputations(imputed, train_labels, rows, p_soft.cpu().numpy(), has_soft.cpu().numpy(), conf.cpu().numpy(), config.threshold)
        )
    if not parts:
        return tuple(np.zeros(0, dtype) for dtype in (np.int64, np.int64, np.int64, np.float64))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    """Rebuild a trained model (eval mode, CPU) from one architecture's checkpoint payload."""
    config = TrainConfig.from_params(payload["config"])
    state = payload["state_dict"]
    mean = state[next(k for k in state if k.endswith("standardize.mean"))]
    std = state[next(k for k in state if k.endswith("standardize.std"))]
    in_dim = mean.shape[-1]
    model = build_model(
        config.architecture,
        in_dim=in_dim,
        n_annotators=len(payload["annotators"]),
        n_classes=len(payload["classes"]),
        feature_mean=mean,
        feature_std=std,
        hidden=config.hidden,
        head_hidden=config.head_hidden,
        dropout=config.dropout,
        n_tokens=payload["input_shape"][0],
        **config.architecture_options.get(config.architecture, {}),
    )
    if config.finetune_backbone:
        model = EndToEnd(load_backbone(config.backbone), model)
    model.load_state_dict(state)
    return model.eval()
