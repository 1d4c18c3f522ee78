"""Labels as compressed rows: each item's annotators (ascending) and their labels.

The (N, A) label matrix holds N * A numbers whatever the crowd labelled; ``LabelRows`` holds
the L labels given (CSR: ``starts`` (N + 1,), ``annotators`` (L,), ``labels`` (L,)), and a
batch's rows cost O(B * W) with W the most labels an item of the batch has, never O(B * A).
The sampled training step (``training.soft_entries_per_item``) reads its labels this way, and
draws the soft-labelled entries it evaluates with ``sample_unlabelled``.

Every shape a batch takes (its width, its number of entries and draws) comes from the labels per
item kept on the host (``LabelRows.counts``), never from a value read back from the device: on a
GPU a step then queues its work without waiting for the device (no host synchronisation).
"""

from __future__ import annotations

import numpy as np
import torch

from simlabel.core.labels import MISSING


def _long_tensor(values) -> torch.Tensor:
    """int64 tensor of an array-like; read-only arrays (pandas columns, memory maps) are copied
    rather than shared, which torch would warn about."""
    array = np.asarray(values)
    return torch.as_tensor(array if array.flags.writeable else array.copy(), dtype=torch.long)


class LabelRows:
    """CSR of a label matrix; build it with ``from_matrix``, ``from_long`` or ``from_table``.

    Attributes
    ----------
    starts : (N + 1,) long, item i's labels are entries ``starts[i]:starts[i + 1]``.
    annotators : (L,) long, ascending within each item.
    labels : (L,) long class indices.
    n_annotators : A.
    counts : (N,) int64 numpy, labels per item, on the host (the batches' shapes).
    """

    def __init__(self, starts: torch.Tensor, annotators: torch.Tensor, labels: torch.Tensor, n_annotators: int,
                 counts: np.ndarray | None = None):
        self.starts, self.annotators, self.labels, self.n_annotators = starts, annotators, labels, n_annotators
        self.counts = np.diff(starts.cpu().numpy()) if counts is None else np.asarray(counts, dtype=np.int64)

    @property
    def n_items(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def from_matrix(cls, matrix, device: torch.device | str = "cpu") -> LabelRows:
        """From an (N, A) int matrix with ``MISSING`` (-1) where there is no label."""
        matrix = _long_tensor(matrix)
        if matrix.dim() != 2:
            raise ValueError(f"labels must be an (N, A) matrix, got shape {tuple(matrix.shape)}")
        items, annotators = (matrix != MISSING).nonzero(as_tuple=True)  # row-major: sorted by (item, annotator)
        counts = torch.bincount(items, minlength=matrix.shape[0])
        return cls._build(counts, annotators, matrix[items, annotators], matrix.shape[1], device)

    @classmethod
    def from_long(cls, items, annotators, labels, n_items: int, n_annotators: int,
                  device: torch.device | str = "cpu") -> LabelRows:
        """From a long table: three (L,) int arrays, one (item, annotator, label) per row."""
        items, annotators, labels = (_long_tensor(a) for a in (items, annotators, labels))
        if not len(items) == len(annotators) == len(labels):
            raise ValueError("items, annotators and labels must have the same length")
        if len(items) and (items.min() < 0 or items.max() >= n_items or annotators.min() < 0
                           or annotators.max() >= n_annotators or labels.min() < 0):
            raise ValueError(f"item indices must lie in [0, {n_items}), annotator indices in [0, {n_annotators}), labels >= 0")
        key = items * n_annotators + annotators
        order = torch.argsort(key)
        if len(key) > 1 and (key[order][1:] == key[order][:-1]).any():
            raise ValueError("an (item, annotator) pair appears twice in the long table")
        counts = torch.bincount(items, minlength=n_items)
        return cls._build(counts, annotators[order], labels[order], n_annotators, device)

    @classmethod
    def from_table(cls, table, device: torch.device | str = "cpu") -> LabelRows:
        """From a ``LabelTable`` (already sorted by item and annotator)."""
        counts = torch.from_numpy(np.diff(table.starts()))
        return cls._build(counts, _long_tensor(table.annotators), _long_tensor(table.labels), table.shape[1], device)

    @classmethod
    def _build(cls, counts, annotators, labels, n_annotators, device) -> LabelRows:
        starts = torch.zeros(len(counts) + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=starts[1:])
        return cls(starts.to(device), annotators.to(device), labels.to(device), n_annotators, counts.numpy())

    def n_labels(self, rows) -> int:
        """How many labels items ``rows`` have (host arithmetic)."""
        return int(self.counts[host_rows(rows)].sum())

    def batch(self, rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The labels of items ``rows`` (B,) laid out (B, W), W = max(1, most labels in the batch).
        ``rows``: host indices (numpy or a CPU tensor) - W is known without reading the device.

        Returns
        -------
        index : (B, W) long annotators, ascending along W; padding holds A (keeps rows sorted).
        valid : (B, W) bool, False on padding.
        values : (B, W) long labels, ``MISSING`` on padding.
        """
        rows = host_rows(rows)
        width = max(int(self.counts[rows].max()) if len(rows) else 0, 1)
        rows = torch.as_tensor(rows, device=self.starts.device)
        first, counts = self.starts[rows], self.starts[rows + 1] - self.starts[rows]
        slots = torch.arange(width, device=rows.device)
        valid = slots < counts[:, None]
        position = torch.where(valid, first[:, None] + slots, 0)
        if len(self.annotators) == 0:
            return torch.full_like(position, self.n_annotators), valid, torch.full_like(position, MISSING)
        index = torch.where(valid, self.annotators[position], self.n_annotators)
        return index, valid, torch.where(valid, self.labels[position], MISSING)

    def to_matrix(self) -> np.ndarray:
        """The (N, A) int64 matrix, ``MISSING`` where there is no label (for small data)."""
        matrix = np.full((self.n_items, self.n_annotators), MISSING, dtype=np.int64)
        items = np.repeat(np.arange(self.n_items), np.diff(self.starts.cpu().numpy()))
        matrix[items, self.annotators.cpu().numpy()] = self.labels.cpu().numpy()
        return matrix


def host_rows(rows) -> np.ndarray:
    """Item indices on the host: a numpy array as is, a tensor copied (a CPU one for free)."""
    return rows.cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)


def n_draws(labelled: np.ndarray, eligible: np.ndarray, n_annotators: int, per_item: int) -> int:
    """How many entries ``sample_unlabelled`` draws, from the host: min(per_item, unlabelled
    annotators) for each eligible item. labelled : (B,) labels per item; eligible : (B,) bool."""
    return int(np.where(eligible, np.minimum(n_annotators - labelled, max(per_item, 0)), 0).sum())


def sample_unlabelled(index: torch.Tensor, valid: torch.Tensor, n_annotators: int, per_item: int,
                      eligible: torch.Tensor, generator: torch.Generator,
                      count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each eligible item, min(per_item, its unlabelled annotators) distinct annotators drawn
    uniformly from those it has no label from.

    Floyd's algorithm, one step per draw for all items at once: O(B * per_item * log W), never
    O(B * A) (scoring all A annotators of each item and keeping the top ones costs ~1.7 ms per
    CIFAR-10N batch of 128 x 747, and grows with the crowd). Each draw is a rank among the item's
    unlabelled annotators, mapped to an annotator by counting the labelled ones below it.

    Parameters
    ----------
    index, valid : (B, W) an item's labelled annotators, ascending where ``valid`` (``LabelRows.batch``).
    eligible : (B,) bool, items that get draws at all.
    count : the number of draws (``n_draws``) when the caller has it from the host: then the
        draws are collected without reading the device (``batch_entries``).

    Returns
    -------
    items, annotators : (E,) long, the drawn entries, item-major.
    """
    n_items, width = index.shape
    device = index.device
    if per_item <= 0 or n_items == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    free = n_annotators - valid.sum(1)  # m_i, the item's unlabelled annotators
    take = torch.where(eligible, free.clamp(max=per_item), 0)
    uniforms = torch.rand((per_item, n_items), generator=generator, dtype=torch.float64).to(device)
    # Floyd: for j = m-k .. m-1, draw t in [0, j]; keep j instead if t is taken. Draws and tops
    # for all steps at once; only the "taken" test is sequential. The steps an eligible item
    # skips (it has fewer than k unlabelled annotators) come first and hold negative numbers
    # (-1, or their negative top), which no draw (>= 0) can match.
    steps = torch.arange(per_item, device=device)
    tops = free[:, None] - per_item + steps
    active = steps >= per_item - take[:, None]
    ranks = torch.where(active, (uniforms.T * (tops + 1).clamp(min=1)).long().minimum(tops.clamp(min=0)), -1)
    for step in range(1, per_item):
        taken = (ranks[:, :step] == ranks[:, step, None]).any(1)
        ranks[:, step] = torch.where(taken, tops[:, step], ranks[:, step])
    ranks = torch.where(active, ranks, -1)
    # Rank r is annotator r + #{labelled annotators a_s with a_s - s <= r} (a_s ascending).
    below = torch.where(valid, index - torch.arange(width, device=device), n_annotators + width)
    annotators = ranks + torch.searchsorted(below, ranks.clamp(min=0), right=True)
    return batch_entries(annotators, ranks >= 0, count)


def batch_entries(index: torch.Tensor, valid: torch.Tensor, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, W) annotators and mask -> (E,) batch-local items and annotators of the valid slots,
    item-major (the entries a model evaluates one by one). ``count``: E, see ``valid_slots``."""
    slots = valid_slots(valid, count)
    return slots // index.shape[1], index.reshape(-1)[slots]


def valid_slots(valid: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """(E,) row-major flat positions of the True entries of ``valid``. Given their number
    ``count`` (host arithmetic), no value is read back from the device (``nonzero_static``); on
    the CPU, where reading is free, ``count`` is checked."""
    flat = valid.reshape(-1)
    if count is None:
        return flat.nonzero()[:, 0]
    if flat.device.type == "cpu" and count != int(flat.sum()):
        raise RuntimeError(f"{count} entries expected from the host counts, the mask has {int(flat.sum())}")
    return torch.nonzero_static(flat, size=count)[:, 0]
