"""Seeded synthetic crowd-labelled video dataset for the embedded demo.

Independent generators, all deterministic given ``seed`` (only
``numpy.random.default_rng`` is used):

* :func:`make_demo_clips` draws small RGB clips whose class is encoded by the
  shape of a moving object (4 shapes), its hue (one hue per class, jittered) and
  its motion (horizontal oscillation vs circular orbit), on a tinted, noisy
  background with random position, size, speed and phase.
* :func:`choose_test_panel` picks a class-balanced test panel: the items every annotator labels.
* :func:`simulate_annotations` simulates a crowd of annotators in groups with
  distinct confusion tendencies: every annotator labels every panel item, the other items
  get 1-3 labels each (heavy missingness, optionally one extra-sparse annotator).
  :func:`annotator_confusions` returns the exact confusion matrices it draws
  labels from, and :func:`true_similarity` the pairs' expected kappa;
  :func:`demo_truth` the true classes of :func:`make_demo_clips` without clips.

The shipped demo (``conf/base/parameters_demo_data.yml``) uses 160 clips, a panel of 40, and
12 annotators in two groups (:func:`groups_from_sizes`): 8 accurate ones and 4 who swap three
class pairs, at 2.5 labels per clip outside the panel, so each annotator has ~25 labels outside
the panel (~19 of them training labels) and 40 test labels.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from simlabel.core.similarity import expected_kappa

CLASS_NAMES = ("worry", "happiness", "neutral", "anger", "surprise", "sadness", "other", "unknown")

_N_SHAPES = 4  # circle, square, triangle, star
_ACCURATE_DIAG = 0.90  # group 0: probability of the true class
SWAPPED_PAIRS = 3  # groups >= 1 confuse this many class pairs; other classes as group 0
_SWAP_PROB = 0.85  # groups >= 1: probability of the group's systematic swap partner
_SWAP_CORRECT = 0.10  # groups >= 1: probability of the true class
_PERSONAL_NOISE = 0.05  # weight of each annotator's own random confusion rows
_RATE_JITTER = 0.20  # non-sparse annotators' labelling rates vary by +-20 %
_MIN_PAIR_OVERLAP = 3  # co-labelled items the assignment tries to give every annotator pair
_OVERLAP_REWARD = 20.0
_TWO_LABEL_SHARE = 0.10  # P(2 labels) = 0.1 * min(m - 1, 3 - m); the rest are 1- or 3-label items


def item_ids(n_items: int) -> list[str]:
    """Item identifiers ``["clip_0000", "clip_0001", ...]`` of length ``n_items``."""
    return [f"clip_{i:04d}" for i in range(n_items)]


def annotator_ids(n_annotators: int) -> list[str]:
    """Annotator identifiers ``["A1", ..., "A<n_annotators>"]``."""
    return [f"A{a + 1}" for a in range(n_annotators)]


# --------------------------------------------------------------------------- clips
def _shape_outline(shape: int, angle: float) -> np.ndarray:
    """Unit-radius polygon (V, 2) for square (1), triangle (2) or 5-point star (3)."""
    if shape == 1:
        t = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        rad = np.full(4, 1.0)
    elif shape == 2:
        t = angle + np.arange(3) * 2 * np.pi / 3
        rad = np.full(3, 1.1)
    else:
        t = angle + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.15, 0.5)
    return np.stack([rad * np.cos(t), rad * np.sin(t)], axis=1)


def _draw_truth(rng: np.random.Generator, n_items: int) -> np.ndarray:
    """Balanced true classes (N,) int64: the first draw :func:`make_demo_clips` makes from its generator."""
    return rng.permutation(np.arange(n_items) % len(CLASS_NAMES)).astype(np.int64)


def demo_truth(n_items: int = 120, seed: int = 0) -> np.ndarray:
    """The true classes :func:`make_demo_clips` returns for ``n_items`` and ``seed``, without rendering clips.

    Returns
    -------
    (N,) int64 in ``[0, 8)``, class counts differing by at most one.
    """
    if int(n_items) != n_items or n_items < 1:
        raise ValueError(f"n_items must be an integer >= 1, got {n_items!r}")
    return _draw_truth(np.random.default_rng(seed), int(n_items))


def _check_clip_args(n_items: int, n_frames: int, height: int, width: int) -> None:
    """ValueError unless N, T >= 1 and H, W >= 32 are integers."""
    for name, value, low in (
        ("n_items", n_items, 1),
        ("n_frames", n_frames, 1),
        ("height", height, 32),
        ("width", width, 32),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _clip_nuisances(rng: np.random.Generator, truth: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    """Per-clip drawing parameters, drawn for all N clips at once (in a fixed order from ``rng``).

    Returns ``{name: (N,) or (N, 3) array}``: object ``radius``, motion ``amp_x`` / ``amp_y``,
    centre ``cx`` / ``cy``, angular speed ``omega``, ``phase``, orientation ``angle``, colour
    ``hue`` / ``sat`` / ``val`` (hue = class / 8 + jitter), background ``bg_level`` and ``bg_tint``
    (N, 3), pixel ``noise_sd`` and ``circular`` (bool: the class moves on a circle).
    """
    n_items, short = truth.size, min(height, width)
    radius = rng.uniform(0.10, 0.17, n_items) * short
    circular = truth >= _N_SHAPES
    amp_x = np.where(
        circular, rng.uniform(0.10, 0.18, n_items) * short, rng.uniform(0.15, 0.25, n_items) * width
    )
    amp_y = np.where(circular, amp_x, 0.0)
    margin_x, margin_y = radius * 1.2 + amp_x, radius * 1.2 + amp_y
    return {
        "radius": radius, "circular": circular, "amp_x": amp_x, "amp_y": amp_y,
        "cx": rng.uniform(margin_x, np.maximum(width - margin_x, margin_x + 1)),
        "cy": rng.uniform(margin_y, np.maximum(height - margin_y, margin_y + 1)),
        "omega": 2 * np.pi / rng.uniform(10, 22, n_items) * rng.choice([-1.0, 1.0], n_items),
        "phase": rng.uniform(0, 2 * np.pi, n_items),
        "angle": rng.uniform(0, 2 * np.pi, n_items),
        "hue": (truth / len(CLASS_NAMES) + rng.normal(0, 0.015, n_items)) % 1.0,
        "sat": rng.uniform(0.65, 1.0, n_items),
        "val": rng.uniform(0.75, 1.0, n_items),
        "bg_level": rng.uniform(40, 150, n_items),
        "bg_tint": rng.uniform(-20, 20, (n_items, 3)),
        "noise_sd": rng.uniform(4, 12, n_items),
    }


def _render_clip(
    rng: np.random.Generator, p: dict[str, np.ndarray], i: int, shape: int, n_frames: int, height: int, width: int
) -> np.ndarray:
    """Clip ``i`` (T, H, W, 3) uint8 RGB: object ``shape`` (0 circle, 1 square, 2 triangle, 3 star)
    drawn with cv2 (anti-aliased, 1/16 px) on each frame along its path, plus Gaussian pixel noise
    (one draw from ``rng``). ``p``: :func:`_clip_nuisances`."""
    colour = tuple(255.0 * np.array(colorsys.hsv_to_rgb(p["hue"][i], p["sat"][i], p["val"][i])))
    theta = p["omega"][i] * np.arange(n_frames) + p["phase"][i]
    xs = p["cx"][i] + p["amp_x"][i] * (np.cos(theta) if p["circular"][i] else np.sin(theta))
    ys = p["cy"][i] + p["amp_y"][i] * np.sin(theta)
    outline = None if shape == 0 else _shape_outline(shape, p["angle"][i]) * p["radius"][i]
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    frames[:] = np.clip(p["bg_level"][i] + p["bg_tint"][i], 0, 255).astype(np.uint8)
    for f in range(n_frames):  # cv2 draws one frame at a time
        if outline is None:
            centre = (int(round(xs[f] * 16)), int(round(ys[f] * 16)))
            cv2.circle(frames[f], centre, int(round(p["radius"][i] * 16)), colour, -1, cv2.LINE_AA, shift=4)
        else:
            pts = np.round((outline + (xs[f], ys[f])) * 16).astype(np.int32)
            cv2.fillPoly(frames[f], [pts], colour, cv2.LINE_AA, shift=4)
    noisy = rng.standard_normal(frames.shape, dtype=np.float32)
    noisy *= np.float32(p["noise_sd"][i])
    noisy += frames
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


def make_demo_clips(
    n_items: int = 120,
    n_frames: int = 24,
    height: int = 120,
    width: int = 160,
    seed: int = 0,
) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Generate a balanced set of synthetic clips whose content encodes the class.

    Class ``c`` (of the 8 in :data:`CLASS_NAMES`) is drawn as shape ``c % 4``
    (circle, square, triangle, star), moving horizontally (``c < 4``) or on a
    circle (``c >= 4``), with hue ``c * 45`` degrees (+- jitter). Nuisances:
    object position, radius, amplitude, speed, phase, orientation, saturation and
    brightness; background tint; gaussian pixel noise.

    Parameters
    ----------
    n_items : int
        Number of clips N (>= 1).
    n_frames : int
        Frames per clip T (>= 1).
    height, width : int
        Frame size H x W in pixels (each >= 32).
    seed : int
        Seed for ``numpy.random.default_rng``; same seed -> identical output.

    Returns
    -------
    ids : list of str, length N
        ``"clip_0000"``, ``"clip_0001"``, ...
    truth : np.ndarray, shape (N,), int64
        True class index in ``[0, 8)``; class counts differ by at most one.
    clips : dict of str -> np.ndarray, each shape (T, H, W, 3), uint8, RGB
    """
    _check_clip_args(n_items, n_frames, height, width)
    rng = np.random.default_rng(seed)
    truth = _draw_truth(rng, n_items)
    ids = item_ids(n_items)
    nuisances = _clip_nuisances(rng, truth, height, width)
    clips = {
        ids[i]: _render_clip(rng, nuisances, i, int(truth[i] % _N_SHAPES), n_frames, height, width)
        for i in range(n_items)
    }
    return ids, truth, clips


# --------------------------------------------------------------------- annotations
def _check_groups(n_annotators: int, groups: Sequence[Sequence[int]]) -> list[list[int]]:
    if int(n_annotators) != n_annotators or n_annotators < 1:
        raise ValueError(f"n_annotators must be a positive integer, got {n_annotators!r}")
    groups = [[int(a) for a in g] for g in groups]
    flat = sorted(a for g in groups for a in g)
    if any(len(g) == 0 for g in groups) or flat != list(range(n_annotators)):
        raise ValueError(
            f"groups must partition annotator indices 0..{n_annotators - 1} into non-empty groups, got {groups}"
        )
    return groups


def annotator_groups(
    n_annotators: int = 10, groups: Sequence[Sequence[int]] = ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9))
) -> dict[str, int]:
    """Map each annotator id to its group index.

    Parameters
    ----------
    n_annotators : int
        Number of annotators A.
    groups : sequence of sequences of int
        Partition of the annotator indices ``0..A-1``.

    Returns
    -------
    dict of str -> int
        ``{"A1": g(0), ..., "A<A>": g(A-1)}``.
    """
    groups = _check_groups(n_annotators, groups)
    ids = annotator_ids(n_annotators)
    return {ids[a]: g for g, members in enumerate(groups) for a in members}


def groups_from_sizes(sizes: Sequence[int]) -> list[list[int]]:
    """Annotator groups numbered group by group: ``[6, 6]`` -> ``[[0..5], [6..11]]``.

    Parameters
    ----------
    sizes : (G,) positive group sizes.

    Returns
    -------
    G lists of annotator indices, a partition of ``0..sum(sizes)-1``.
    """
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"group sizes must be a non-empty list of positive integers, got {sizes}")
    bounds = np.cumsum([0, *sizes])
    return [list(range(lo, hi)) for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def _swap_permutation(n_classes: int, round_: int, n_pairs: int | None = None) -> np.ndarray:
    """Involution pairing the classes by round ``round_`` of the circle-method round robin.

    Different rounds share no pair, so groups using different rounds confuse
    different class pairs. With an odd class count one class stays fixed.
    """
    n = n_classes + n_classes % 2
    r = round_ % (n - 1)
    perm = np.arange(n)
    pairs = [(n - 1, r)] + [((r + i) % (n - 1), (r - i) % (n - 1)) for i in range(1, n // 2)]
    for a, b in pairs[: len(pairs) if n_pairs is None else n_pairs]:
        perm[a], perm[b] = b, a
    perm = perm[:n_classes]
    return np.where(perm >= n_classes, np.arange(n_classes), perm)


def group_confusion(group: int, n_classes: int = 8) -> np.ndarray:
    """Row-stochastic confusion tendency (C, C) of annotator group ``group``.

    Group 0 is mostly accurate (diagonal 0.9). Group ``g >= 1`` swaps ``SWAPPED_PAIRS``
    class pairs, a pairing specific to the group (probability 0.85; true class 0.1; the
    rest spread uniformly), and labels the other classes like group 0. Groups thus
    disagree systematically on some classes and agree on the others (between-group kappa
    ~0.1-0.15, within ~0.6). The swaps are strong because with ~80 % missing labels and
    120 items a pair of annotators shares only ~4 items, from which kappa must still tell
    the groups apart.
    Row ``c`` is p(label | true class c); shape (C, C).
    """
    if n_classes < 3:
        raise ValueError(f"n_classes must be >= 3, got {n_classes}")
    eye = np.eye(n_classes)
    uniform_off = (1 - eye) / (n_classes - 1)
    if group == 0:
        return _ACCURATE_DIAG * eye + (1 - _ACCURATE_DIAG) * uniform_off
    swap = eye[_swap_permutation(n_classes, group - 1, SWAPPED_PAIRS)]
    rest = 1 - eye - swap
    rest /= np.maximum(rest.sum(1, keepdims=True), 1)
    fixed = swap.diagonal()[:, None] == 1  # class without a partner (odd C): accurate row
    swapped = _SWAP_PROB * swap + _SWAP_CORRECT * eye + (1 - _SWAP_PROB - _SWAP_CORRECT) * rest
    return np.where(fixed, _ACCURATE_DIAG * eye + (1 - _ACCURATE_DIAG) * uniform_off, swapped)


def _draw_confusions(
    rng: np.random.Generator, n_classes: int, n_annotators: int, groups: list[list[int]]
) -> np.ndarray:
    """Per-annotator confusions (A, C, C): the group's tendency mixed with ``_PERSONAL_NOISE`` of
    random rows of the annotator's own (one Dirichlet draw from ``rng``, the first one
    :func:`simulate_annotations` makes)."""
    group_of = np.empty(n_annotators, np.int64)
    for g, members in enumerate(groups):
        group_of[members] = g
    base = np.stack([group_confusion(g, n_classes) for g in range(len(groups))])[group_of]
    personal = rng.dirichlet(np.ones(n_classes), size=(n_annotators, n_classes))
    return (1 - _PERSONAL_NOISE) * base + _PERSONAL_NOISE * personal


def annotator_confusions(
    n_classes: int = 8,
    n_annotators: int = 10,
    groups: Sequence[Sequence[int]] = ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9)),
    seed: int = 0,
) -> np.ndarray:
    """The exact confusion matrices :func:`simulate_annotations` draws labels from (same arguments, same seed).

    Returns
    -------
    (A, C, C) float64, ``P[a, true, given] = p(annotator a says given | true class)``, rows sum to 1.
    """
    if n_classes < 3:
        raise ValueError(f"n_classes must be >= 3, got {n_classes}")
    groups = _check_groups(n_annotators, groups)
    return _draw_confusions(np.random.default_rng(seed), n_classes, n_annotators, groups)


def true_similarity(
    n_classes: int = 8,
    n_annotators: int = 10,
    groups: Sequence[Sequence[int]] = ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9)),
    seed: int = 0,
    class_prior: np.ndarray | None = None,
) -> pd.DataFrame:
    """Expected (population) Cohen's kappa of every pair of simulated annotators.

    Pairs of :func:`simulate_annotations` labels are independent given the true class, so
    their kappa on a large sample tends to
    :func:`simlabel.core.similarity.expected_kappa` of the annotators' exact confusions
    (:func:`annotator_confusions`, same arguments and seed) under the class prior.

    Parameters
    ----------
    n_classes, n_annotators, groups, seed : as for :func:`simulate_annotations`.
    class_prior : (C,) class frequencies; None = uniform (the demo's truth is balanced).

    Returns
    -------
    pandas.DataFrame (A, A), index and columns the annotator ids ``"A1".."A<A>"``; symmetric,
    in [0, 1], diagonal 1.
    """
    prior = (
        np.full(n_classes, 1.0 / n_classes)
        if class_prior is None
        else np.asarray(class_prior, float)
    )
    if prior.shape != (n_classes,) or (prior < 0).any() or not np.isclose(prior.sum(), 1.0):
        raise ValueError(
            f"class_prior must be ({n_classes},) non-negative and sum to 1, got {class_prior!r}"
        )
    similarity = expected_kappa(annotator_confusions(n_classes, n_annotators, groups, seed), prior)
    np.fill_diagonal(similarity, 1.0)
    ids = annotator_ids(n_annotators)
    return pd.DataFrame(similarity, index=ids, columns=ids)


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts (len(weights),) summing to ``total``, proportional to ``weights`` (largest remainder)."""
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    short = total - counts.sum()
    counts[np.argsort(counts - raw, kind="stable")[:short]] += 1
    return counts


def _assign(
    counts: np.ndarray, quotas: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random item-annotator incidence with given row sums ``counts`` (N,) and column sums ``quotas`` (A,).

    Annotator slots are shuffled over item slots, then the few slots where an
    item received the same annotator twice are swapped away.
    Returns (item index, annotator index) arrays of length ``counts.sum()``.
    """
    n_items, n_ann = len(counts), len(quotas)
    item = np.repeat(np.arange(n_items), counts)
    ann = rng.permutation(np.repeat(np.arange(n_ann), quotas))
    member = np.zeros((n_items, n_ann), np.int64)
    np.add.at(member, (item, ann), 1)
    for s in np.flatnonzero(member[item, ann] > 1):  # loop over conflicts only (few)
        i, a = item[s], ann[s]
        if member[i, a] <= 1:
            continue
        ok = (member[item, a] == 0) & (member[i, ann] == 0)
        if not ok.any():
            raise RuntimeError(
                "cannot assign annotators to items without repeats; lower the labelling rates"
            )
        t = rng.choice(np.flatnonzero(ok))
        j, b = item[t], ann[t]
        member[i, a] -= 1
        member[j, b] -= 1
        member[i, b] += 1
        member[j, a] += 1
        ann[s], ann[t] = b, a
    return item, ann


def _pair_cost(overlap: np.ndarray) -> np.ndarray:
    """Design cost of annotator pairs co-labelling ``overlap`` items: a large reward for reaching
    ``_MIN_PAIR_OVERLAP`` (kappa estimable), then a quadratic cost evening out the overlaps."""
    return overlap.astype(np.float64) ** 2 - _OVERLAP_REWARD * (overlap >= _MIN_PAIR_OVERLAP)


def _balance_pairs(
    item: np.ndarray,
    ann: np.ndarray,
    n_items: int,
    n_ann: int,
    rng: np.random.Generator,
    n_proposals: int,
) -> np.ndarray:
    """Even out co-labelling between annotator pairs by annotator swaps between items.

    Hill climbing on sum over pairs of (co-labelled items)^2 (the total is fixed by
    the labels per item, so this equalises pair overlaps). Swapping the annotators
    of two slots keeps every item's label count and every annotator's quota.
    Returns the new annotator index per slot (same length as ``item``).
    """
    ann = ann.copy()
    member = np.zeros((n_items, n_ann), np.int64)
    member[item, ann] = 1
    pairs = member.T @ member
    np.fill_diagonal(pairs, 0)
    proposals = rng.integers(len(item), size=(n_proposals, 2))
    for s, t in proposals:  # cheap O(A) work per proposal
        i, a, j, b = item[s], ann[s], item[t], ann[t]
        if i == j or a == b or member[i, b] or member[j, a]:
            continue
        d = member[j] - member[i]  # change of a's co-labels (b's get -d), k != a, b
        d[[a, b]] = 0
        pa, pb = pairs[a], pairs[b]
        delta = (_pair_cost(pa + d) - _pair_cost(pa)).sum() + (
            _pair_cost(pb - d) - _pair_cost(pb)
        ).sum()
        if delta >= 0:
            continue
        pairs[a] += d
        pairs[:, a] += d
        pairs[b] -= d
        pairs[:, b] -= d
        member[i, a] = member[j, b] = 0
        member[i, b] = member[j, a] = 1
        ann[s], ann[t] = b, a
    return ann


def choose_test_panel(truth: np.ndarray, n_panel: int, seed: int = 0) -> np.ndarray:
    """The demo's test panel: ``n_panel`` items that every annotator labels, spread over the classes.

    Items are taken round-robin over the classes (class counts in the panel differ by at most
    one where the classes allow), in a seeded random order; the generator is
    ``default_rng([seed, 1])``, so the panel does not change any other draw of the demo.

    Parameters
    ----------
    truth : (N,) int true classes.
    n_panel : panel size P, in ``[1, N)`` (at least one item stays outside the panel).
    seed : seed of the demo.

    Returns
    -------
    (P,) int64 item indices, sorted.
    """
    truth = np.asarray(truth)
    if int(n_panel) != n_panel or not 1 <= n_panel < truth.size:
        raise ValueError(f"n_panel must be an integer in [1, {truth.size}) (the number of items), got {n_panel!r}")
    order = np.random.default_rng([seed, 1]).permutation(truth.size)
    cls = truth[order]
    by_class = np.argsort(cls, kind="stable")
    starts = np.searchsorted(cls[by_class], cls[by_class])  # first position of each item's class
    rank = np.empty(truth.size, np.int64)
    rank[by_class] = np.arange(truth.size) - starts  # rank of each item within its class
    chosen = order[np.lexsort((np.arange(truth.size), rank))[: int(n_panel)]]
    return np.sort(chosen).astype(np.int64)


def _check_annotation_args(
    truth: np.ndarray, n_classes: int, n_annotators: int, groups, labels_per_item_mean: float,
    sparse_annotator: int | None, sparse_missing: float, panel,
) -> tuple[np.ndarray, list[list[int]], np.ndarray | None]:
    """Validated ``truth`` (N,), ``groups`` and ``panel`` (P,) int64 or None; ValueError otherwise."""
    truth = np.asarray(truth)
    if truth.ndim != 1 or truth.size == 0 or not np.issubdtype(truth.dtype, np.integer):
        raise ValueError(
            f"truth must be a non-empty 1-D integer array, got shape {truth.shape} dtype {truth.dtype}"
        )
    if n_classes < 3 or truth.min() < 0 or truth.max() >= n_classes:
        raise ValueError(
            f"truth must lie in [0, n_classes) with n_classes >= 3 (n_classes={n_classes})"
        )
    groups = _check_groups(n_annotators, groups)
    max_labels = min(3, n_annotators)
    if not 1 <= labels_per_item_mean <= max_labels:
        raise ValueError(
            f"labels_per_item_mean must be in [1, {max_labels}], got {labels_per_item_mean}"
        )
    if sparse_annotator is not None:
        if not 0 <= sparse_annotator < n_annotators:
            raise ValueError(
                f"sparse_annotator must be in [0, {n_annotators}) or None, got {sparse_annotator}"
            )
        if not 0 < sparse_missing < 1:
            raise ValueError(f"sparse_missing must be in (0, 1), got {sparse_missing}")
    if panel is not None:
        panel = np.asarray(panel)
        if (
            panel.ndim != 1 or not np.issubdtype(panel.dtype, np.integer) or panel.size == 0
            or np.unique(panel).size != panel.size or panel.min() < 0 or panel.max() >= truth.size
            or panel.size >= truth.size
        ):
            raise ValueError(
                f"panel must be distinct item indices in [0, {truth.size}), leaving items outside it, got {panel!r}"
            )
        panel = panel.astype(np.int64)
    return truth, groups, panel


def _labels_per_item(rng: np.random.Generator, n_items: int, mean: float, max_labels: int) -> np.ndarray:
    """(N,) int64 labels per item in 1..3 with mean ``mean``; exact shares by apportionment:
    P(2) = ``_TWO_LABEL_SHARE`` * min(m - 1, 3 - m) (few 2-label items, so co-labelling is frequent),
    P(3) = (m - 1 - P(2)) / 2, in a random order."""
    if max_labels == 3:
        p2 = min(mean - 1, 3 - mean) * _TWO_LABEL_SHARE
        p3 = (mean - 1 - p2) / 2
    else:  # one or two annotators in total
        p2, p3 = mean - 1, 0.0
    probs = np.array([1 - p2 - p3, p2, p3])
    return rng.permutation(np.repeat(np.arange(1, 4), _apportion(n_items, probs)))


def _annotator_quotas(
    rng: np.random.Generator, total: int, n_items: int, n_annotators: int,
    sparse_annotator: int | None, sparse_missing: float,
) -> np.ndarray:
    """(A,) int64 labels per annotator summing to ``total``: the sparse annotator labels
    ``1 - sparse_missing`` of the ``n_items`` items, the others share the rest in proportion to
    rates jittered by ``_RATE_JITTER``."""
    rates = rng.uniform(1 - _RATE_JITTER, 1 + _RATE_JITTER, n_annotators)
    quotas = np.zeros(n_annotators, np.int64)
    others = np.arange(n_annotators)
    if sparse_annotator is not None:
        quotas[sparse_annotator] = max(1, round((1 - sparse_missing) * n_items))
        others = others[others != sparse_annotator]
    quotas[others] = _apportion(total - int(quotas.sum()), rates[others])
    if quotas.max() > n_items or (quotas[others] < 0).any():
        raise ValueError(
            "labelling rates infeasible: an annotator would label more items than exist; "
            "lower labels_per_item_mean or raise n_annotators"
        )
    return quotas


def _sparse_slots(
    rng: np.random.Generator, n_items: int, n_annotators: int, labels_per_item_mean: float,
    sparse_annotator: int | None, sparse_missing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Who labels which of ``n_items`` items: (item index, annotator index) arrays of length L,
    every item labelled by 1-3 annotators, pair overlaps balanced (:func:`_balance_pairs`)."""
    counts = _labels_per_item(rng, n_items, float(labels_per_item_mean), min(3, n_annotators))
    total = int(counts.sum())
    quotas = _annotator_quotas(rng, total, n_items, n_annotators, sparse_annotator, sparse_missing)
    item, ann = _assign(counts, quotas, rng)
    ann = _balance_pairs(item, ann, n_items, n_annotators, rng, n_proposals=min(30 * total, 20_000))
    return item, ann


def _draw_labels(rng: np.random.Generator, confusion: np.ndarray, ann: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(L,) int64 labels, label s drawn from row ``true[s]`` of annotator ``ann[s]``'s confusion (A, C, C)."""
    cdf = np.cumsum(confusion[ann, true], axis=1)
    return (rng.random((len(ann), 1)) > cdf[:, :-1]).sum(axis=1).astype(np.int64)


def simulate_annotations(
    truth: np.ndarray,
    n_classes: int = 8,
    n_annotators: int = 10,
    groups: Sequence[Sequence[int]] = ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9)),
    labels_per_item_mean: float = 2.0,
    sparse_annotator: int | None = 9,
    sparse_missing: float = 0.91,
    seed: int = 0,
    panel: np.ndarray | None = None,
) -> pd.DataFrame:
    """Simulate sparse crowd labels from annotator groups with distinct confusions.

    Each annotator's confusion matrix is its group's (:func:`group_confusion`)
    mixed with 5 % of random rows of its own (:func:`annotator_confusions` returns
    them for the same arguments and seed); every label is drawn from its annotator's row
    for the item's true class, independently.

    Items of the test ``panel`` (if any) are labelled by every annotator. Every other item
    gets 1-3 labels (mean ``labels_per_item_mean``; the exact numbers of 1-, 2- and 3-label
    items are fixed by apportionment, with few 2-label items so that co-labelling is
    frequent). Outside the panel, the sparse annotator labels a fraction ``1 - sparse_missing``
    of the items; the other annotators share the remaining labels in proportion to individual
    rates (+-20 % around equal). Which annotators label which item is a random incidence with
    those marginals, then rebalanced, blind to the groups, so that as many annotator pairs as
    possible co-label at least 3 items (kappa estimable) and overlaps are even: multi-label
    items mix annotators within and across groups alike.

    Parameters
    ----------
    truth : (N,) int true class per item (as returned by :func:`make_demo_clips`), in ``[0, C)``.
    n_classes : number of classes C (>= 3).
    n_annotators : number of annotators A (ids ``"A1"..."A<A>"``).
    groups : partition of ``0..A-1``; group 0 is the accurate one.
    labels_per_item_mean : mean labels per non-panel item, in ``[1, min(3, A)]``.
    sparse_annotator : index of the annotator with missing rate ``sparse_missing`` outside the
        panel; None for none.
    sparse_missing : missing rate of the sparse annotator, in ``(0, 1)``.
    seed : seed for ``numpy.random.default_rng``.
    panel : (P,) distinct item indices every annotator labels (:func:`choose_test_panel`), P < N; None
        for no panel (then the draws are exactly those of the panel-free generator).

    Returns
    -------
    pandas.DataFrame (L, 3), one row per given label, sorted by item then annotator; columns
    ``item_id`` (str, ``"clip_0000"``...), ``annotator_id`` (str) and ``label`` (int64 class index).
    """
    truth, groups, panel = _check_annotation_args(
        truth, n_classes, n_annotators, groups, labels_per_item_mean, sparse_annotator, sparse_missing, panel
    )
    rng = np.random.default_rng(seed)
    confusion = _draw_confusions(rng, n_classes, n_annotators, groups)  # (A, C, C)
    rest = np.arange(truth.size) if panel is None else np.setdiff1d(np.arange(truth.size), panel)
    item, ann = _sparse_slots(rng, rest.size, n_annotators, labels_per_item_mean, sparse_annotator, sparse_missing)
    item = rest[item]
    label = _draw_labels(rng, confusion, ann, truth[item])
    if panel is not None:  # every annotator labels every panel item, drawn after the sparse labels
        panel_item, panel_ann = np.repeat(panel, n_annotators), np.tile(np.arange(n_annotators), panel.size)
        item, ann = np.concatenate([item, panel_item]), np.concatenate([ann, panel_ann])
        label = np.concatenate([label, _draw_labels(rng, confusion, panel_ann, truth[panel_item])])
    order = np.lexsort((ann, item))
    return pd.DataFrame(
        {
            "item_id": np.asarray(item_ids(truth.size), dtype=object)[item[order]],
            "annotator_id": np.asarray(annotator_ids(n_annotators), dtype=object)[ann[order]],
            "label": label[order],
        }
    )
