"""One SimLabel training step with A = 747 annotators against the same step with A = 1.

Cached-embedding setting (D = 1280, EfficientNet-Lite0 features), batch of 128 items whose label
rows come from CIFAR-10N (3 labels per item out of 747 annotators). A step = forward,
similarity-weighted soft labels, CE + KL loss, backward, AdamW step: the training loop's work per
batch. Two ways for A = 747:
- dense (the paper, ``soft_entries_per_item: null``): every (item, annotator) entry, (B, A, C);
- sampled (``soft_entries_per_item: k``): the observed entries and k random soft-labelled missing
  entries per item (an unbiased estimate of the KL mean), (E, C) with E = B * (3 + k); its labels
  are compressed rows (``LabelRows``), as the training loop gives them.
The A = 1 baseline keeps one label per item (one annotator, nothing to soft-label). Before
timing, asserts on CIFAR-10N rows that the sampled loss with every soft entry drawn equals the
dense loss, and that the drawn entries are unlabelled ones. Also prints the memory a step
allocates as the number of annotators grows, and a floor: the part of the sampled step that grows
with A alone (``heads``: the entry products forward and backward, AdamW over every head), timed
in the same alternation, so ``1 + floor / (A = 1 step)`` is the least ratio any sampled heads
step with these torch ops and dense AdamW can reach.

    .venv/bin/python bench/train_step.py [--steps 30] [--batch 128] [--k 8] [--architecture heads]

Last line: {"ratio_A747_vs_A1": (sampled), "ratio_dense_A747_vs_A1": ..., "floor_ratio": ..., "step_ms_*": ...}
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import numpy as np
import torch
from _common import emit, load_cifar10n, machine

from simlabel.core.kappa import kappa_matrix
from simlabel.core.label_rows import LabelRows, batch_entries, sample_unlabelled
from simlabel.core.losses import simlabel_loss
from simlabel.core.soft_labels import soft_labels
from simlabel.models.annotators import build_model, head_entries, rows_of
from simlabel.runtime import keep_freed_memory
from simlabel.training.optim import AnnotatorRowsAdamW, FusedAdamW
from simlabel.training.targets import SampledTargets, mean_probability


def stepper(labels, n_classes, batch, architecture, k=None, dim=1280, seed=0, rows=False):
    """A function that runs one training step on a fresh random batch and returns its seconds.
    ``rows``: the per-annotator parameters updated by rows (``head_updates: rows``), as the
    training loop's ``Optimisation`` does it."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_items, n_annotators = labels.shape
    tokens = torch.from_numpy(rng.normal(size=(n_items, 1, dim)).astype(np.float32))
    y = torch.from_numpy(labels)
    similarity = torch.from_numpy(kappa_matrix(labels, n_classes, 2).astype(np.float32))
    model = build_model(architecture, in_dim=dim, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(dim), feature_std=torch.ones(dim), hidden=128, dropout=0.2)
    optimizer = FusedAdamW(model.parameters(), lr=1e-3)  # as the training loop
    row_updates = AnnotatorRowsAdamW(model) if rows else None
    stepped = functools.partial(row_updates.call, model) if rows else model
    weight = 1.0 if n_annotators > 1 else 0.0
    sampled = SampledTargets("predictions", k, torch.Generator().manual_seed(seed)) if k else None
    label_rows = LabelRows.from_matrix(labels) if k else None

    def step() -> float:
        rows = torch.from_numpy(rng.choice(n_items, batch, replace=False))
        started = time.perf_counter()
        inputs = tokens.index_select(0, rows)  # as the training loop's BatchSource
        if k:
            loss, _ = simlabel_loss(*sampled(stepped, inputs, rows, label_rows, label_rows, similarity, None), weight)
        else:
            log_p = model(inputs)
            y_batch = y.index_select(0, rows)
            p_soft, has_soft = soft_labels(mean_probability(log_p), y_batch, similarity) if weight else (None, None)
            loss, _ = simlabel_loss(log_p, y_batch, p_soft, has_soft, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if row_updates is not None:
            row_updates.step(1e-3)
        optimizer.step()
        return time.perf_counter() - started

    return step


def head_floor(labels, n_classes, batch, k, dim=1280, hidden=128, seed=0):
    """A function that runs, on a fresh random batch, only the part of the sampled step that grows
    with A (``heads``): the per-annotator heads' forward and backward at the step's entries (its
    labelled entries and k drawn ones per item, read from the trunk's output) and AdamW over every
    head. No trunk, soft labels or loss. A sampled step with dense AdamW does at least this on top
    of the A = 1 step's work, so ``1 + floor / A = 1 step`` bounds the ratio from below."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_items, n_annotators = labels.shape
    heads = build_model("heads", in_dim=dim, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(dim), feature_std=torch.ones(dim), hidden=hidden).heads
    optimizer = FusedAdamW(heads.parameters(), lr=1e-3)
    label_rows, generator = LabelRows.from_matrix(labels), torch.Generator().manual_seed(seed)

    def step() -> float:
        index, valid, _ = label_rows.batch(torch.from_numpy(rng.choice(n_items, batch, replace=False)))
        hard_items, hard_annotators = batch_entries(index, valid)
        soft_items, soft_annotators = sample_unlabelled(index, valid, n_annotators, k, valid.any(1), generator)
        items, annotators = torch.cat([hard_items, soft_items]), torch.cat([hard_annotators, soft_annotators])
        trunk_output = torch.randn(batch, hidden, requires_grad=True)
        gradient = torch.randn(len(items), n_classes)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        head_entries(heads, rows_of(trunk_output, items), annotators).backward(gradient)
        optimizer.step()
        return time.perf_counter() - started

    return step


def check_sampled_step(labels, n_classes, batch: int, architecture: str, k: int, dim: int = 64) -> None:
    """What the timed steps compute, asserted on real rows before timing: with k = A (every
    soft-labelled entry drawn) the sampled loss equals the dense (paper) loss on the same batch
    and model, and with the timed k every drawn entry is one its item has no label from."""
    torch.manual_seed(0)
    n_items, n_annotators = labels.shape
    # padl draws fresh logit noise on every call, even in evaluation: compare its mean logits.
    options = {"n_samples": 0} if architecture == "padl" else {}
    model = build_model(architecture, in_dim=dim, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(dim), feature_std=torch.ones(dim), hidden=32, dropout=0.0,
                        **options).eval()
    rows = np.flatnonzero((labels != -1).any(1))[:batch]
    tokens, y = torch.randn(len(rows), 1, dim), torch.from_numpy(labels[rows])
    similarity = torch.from_numpy(kappa_matrix(labels, n_classes, 2).astype(np.float32))
    label_rows = LabelRows.from_matrix(labels)
    log_p = model(tokens)
    dense, _ = simlabel_loss(log_p, y, *soft_labels(log_p.exp(), y, similarity), 1.0)
    every = SampledTargets("predictions", n_annotators, torch.Generator().manual_seed(0))
    sampled, _ = simlabel_loss(*every(model, tokens, rows, label_rows, label_rows, similarity, None), 1.0)
    torch.testing.assert_close(sampled, dense, rtol=1e-5, atol=1e-6)
    index, valid, _ = label_rows.batch(rows)
    items, annotators = sample_unlabelled(index, valid, n_annotators, k, valid.any(1), torch.Generator().manual_seed(1))
    assert (labels[rows[items.numpy()], annotators.numpy()] == -1).all(), "a drawn entry has a label"
    assert (np.bincount(items.numpy(), minlength=len(rows)) == k).all(), "not k draws per labelled item"
    print(f"check: sampled loss with k = A equals the dense loss ({float(dense.detach()):.6f}) on {len(rows)} "
          f"CIFAR-10N items x {n_annotators} annotators; draws with k = {k} are unlabelled entries")


def alternating_medians(steppers: dict, steps: int, warmup: int = 3) -> dict:
    """Median milliseconds per step of each stepper, their steps alternating one by one (A = 1,
    A = 747, ...) so that load changes hit every configuration alike."""
    times: dict = {name: [] for name in steppers}
    for k in range(warmup + steps):
        for name, step in steppers.items():
            seconds = step()
            if k >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def step_times(labels, n_classes, steps, batch, architecture, k=None, dim=64):
    """Median milliseconds of ``steps`` steps of one configuration (the memory profile's runs)."""
    return alternating_medians({"one": stepper(labels, n_classes, batch, architecture, k, dim)}, steps)["one"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--architecture", default="heads")
    parser.add_argument("--k", type=int, default=8, help="soft entries per item in the sampled mode")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; in each, single steps of every configuration alternate")
    parser.add_argument("--skip-memory", action="store_true", help="skip the allocation profile")
    args = parser.parse_args()
    torch.set_num_threads(2)
    keep_freed_memory()  # as kedro runs do (RuntimeHooks)
    y, n_classes, _ = load_cifar10n()
    y = np.ascontiguousarray(y)
    one = np.where(y != -1, y, n_classes).min(1)[:, None]  # one label per item, one annotator
    print(f"{len(y)} items, {y.shape[1]} annotators, {(y != -1).sum()} labels; batch {args.batch}; {machine()}")
    check_sampled_step(y, n_classes, args.batch, args.architecture, args.k)
    # Each round alternates single steps of A = 1, A = 747 sampled and dense; medians over rounds.
    heads = args.architecture == "heads"  # the floor is the heads' work
    rounds = {"one": [], "sampled": [], "rows": [], "dense": [], "floor": []}
    for r in range(args.rounds):
        medians = alternating_medians({
            "one": stepper(one, n_classes, args.batch, args.architecture, seed=r),
            "sampled": stepper(y, n_classes, args.batch, args.architecture, k=args.k, seed=r),
            "rows": stepper(y, n_classes, args.batch, args.architecture, k=args.k, seed=r, rows=True),
            "dense": stepper(y, n_classes, args.batch, args.architecture, seed=r),
            **({"floor": head_floor(y, n_classes, args.batch, args.k, seed=r)} if heads else {}),
        }, args.steps)
        for name, ms in medians.items():
            rounds[name].append(ms)
    ms_one, ms_sampled, ms_rows, ms_dense = (statistics.median(rounds[name]) for name in ("one", "sampled", "rows", "dense"))
    ratios = [sampled / one for sampled, one in zip(rounds["sampled"], rounds["one"], strict=True)]
    row_ratios = [rows / one for rows, one in zip(rounds["rows"], rounds["one"], strict=True)]
    print(f"sampled / A = 1 per round: {', '.join(f'{r:.2f}' for r in ratios)}; with row updates: "
          f"{', '.join(f'{r:.2f}' for r in row_ratios)}")
    print(f"A = 1:                      {ms_one:8.2f} ms per step")
    print(f"A = {y.shape[1]}, sampled k = {args.k}:  {ms_sampled:8.2f} ms per step  ({ms_sampled / ms_one:.2f}x A = 1)")
    print(f"A = {y.shape[1]}, sampled + rows: {ms_rows:8.2f} ms per step  ({ms_rows / ms_one:.2f}x A = 1)")
    print(f"A = {y.shape[1]}, dense (paper):   {ms_dense:8.2f} ms per step  ({ms_dense / ms_one:.2f}x A = 1)")
    floor = {}
    if heads:
        ms_floor = statistics.median(rounds["floor"])
        floor = {"floor_ms": round(ms_floor, 2), "floor_ratio": round(1 + ms_floor / ms_one, 3)}
        print(f"floor: the heads' entry products forward + backward and AdamW over {y.shape[1]} heads alone take "
              f"{ms_floor:.2f} ms, so a sampled heads step is >= {1 + ms_floor / ms_one:.2f}x A = 1")

    # Memory: bytes torch allocates during one step (profiler), as the number of annotators grows.
    from torch.profiler import ProfilerActivity, profile

    if args.skip_memory:
        emit({"ratio_A747_vs_A1": round(ms_sampled / ms_one, 3), "ratio_rows_A747_vs_A1": round(ms_rows / ms_one, 3),
              "ratio_dense_A747_vs_A1": round(ms_dense / ms_one, 3), "round_ratios": [round(r, 3) for r in ratios],
              "round_ratios_rows": [round(r, 3) for r in row_ratios], **floor})
        return

    labelled = (y != -1).any(1)
    for mode, k in (("dense", None), (f"sampled k={args.k}", args.k)):
        for n_annotators in (10, 100, y.shape[1]):
            sub = y[labelled][:, :n_annotators]
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                step_times(sub, n_classes, 1, args.batch, args.architecture, k=k, dim=64)
            allocated = sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0) / 2**20 / 4
            print(f"{mode:12s} A = {n_annotators:4d}: {allocated:7.1f} MiB allocated per step (batch {args.batch})")
    emit({"ratio_A747_vs_A1": round(ms_sampled / ms_one, 3), "ratio_rows_A747_vs_A1": round(ms_rows / ms_one, 3),
          "ratio_dense_A747_vs_A1": round(ms_dense / ms_one, 3), "round_ratios": [round(r, 3) for r in ratios],
          "round_ratios_rows": [round(r, 3) for r in row_ratios], "step_ms_A1": round(ms_one, 2),
          "step_ms_A747_sampled": round(ms_sampled, 2), "step_ms_A747_rows": round(ms_rows, 2),
          "step_ms_A747_dense": round(ms_dense, 2), **floor})


if __name__ == "__main__":
    main()
