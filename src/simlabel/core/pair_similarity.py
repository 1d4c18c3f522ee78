"""An (A, A) annotator similarity held as its evidence pairs and a prior rule for every other pair.

Every estimator of :mod:`simlabel.core.similarity` is of this form: the pairs that co-labelled
enough items get a value from their own labels, and the rest (the great majority at scale: on
CIFAR-10N 96 % of the pairs share no item) get the estimator's prior, a rule of per-annotator
quantities:

- ``constant``: one value (kappa: 0; kappa shrunk to the global mean: that mean);
- ``mean``: ``clip((m_j + m_k) / 2, 0, 1)`` of per-annotator means ``m`` (kappa shrunk to each
  annotator's own mean);
- ``kappa``: the kappa implied by per-annotator agreement vectors ``u`` and label marginals
  ``q`` (Dawid-Skene: ``p_o = u_j . u_k``, ``p_e = q_j . q_k``; :func:`expected_kappa`).

So memory is O(pairs with evidence + A), never O(A^2): at 100,000 annotators a dense float64
(A, A) is 80 GB. The diagonal is 0 (it is not used). ``to_dense`` gives the matrix for small
crowds (heatmaps, the dense training step, tests); ``tensor`` a torch view that the sampled
training step indexes with ``similarity[rows, cols]`` as it would a dense tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simlabel.core.kappa import _ONE_TOLERANCE
from simlabel.core.labels import find_sorted

if TYPE_CHECKING:
    import torch

PRIOR_KINDS = ("constant", "mean", "kappa")
# ``at`` evaluates the prior rule this many pairs at a time (the kappa rule reads (pairs, C * C)).
_LOOKUP_CHUNK = 1 << 16


def _prior_values(kind: str, params: dict, rows, cols):
    """The prior rule at pairs ``(rows, cols)`` (same shape): numpy arrays or torch tensors alike
    (the stages without a model never import torch)."""
    if kind == "constant":
        return rows * 0 + params["value"][0]
    if kind == "mean":
        per_annotator = params["per_annotator"]
        return ((per_annotator[rows] + per_annotator[cols]) / 2).clip(0.0, 1.0)
    agreement, marginals = params["agreement"], params["marginals"]
    return kappa_from_rates((agreement[rows] * agreement[cols]).sum(-1), (marginals[rows] * marginals[cols]).sum(-1))


def kappa_from_rates(p_o, p_e, clip: bool = True):
    """``(p_o - p_e) / (1 - p_e)`` elementwise, clipped to [0, 1] unless ``clip`` is False; p_e = 1
    gives 1 if p_o = 1 else 0 (SPEC section 1). Numpy arrays or torch tensors."""
    degenerate = abs(p_e - 1.0) <= _ONE_TOLERANCE
    both_one = abs(p_o - 1.0) <= _ONE_TOLERANCE
    kappa = (p_o - p_e) / (1.0 - p_e + degenerate)  # the degenerate pairs' value is set below
    kappa = kappa * ~degenerate + both_one * degenerate
    return kappa.clip(0.0, 1.0) if clip else kappa


@dataclass(frozen=True, eq=False)
class PairSimilarity:
    """(A, A) similarity: ``values`` at the sorted pair keys ``keys`` (``j * A + k``, j != k,
    both orders), the prior rule ``prior_kind`` with ``prior`` (arrays, see the module
    docstring) everywhere else, 0 on the diagonal. ``annotator_ids`` names the annotators
    (the pipelines' outputs carry them; a similarity of a bare matrix has none)."""

    n_annotators: int
    keys: np.ndarray
    values: np.ndarray
    prior_kind: str = "constant"
    prior: dict[str, np.ndarray] = field(default_factory=lambda: {"value": np.zeros(1)})
    annotator_ids: pd.Index | None = None

    def __post_init__(self):
        keys, values = np.asarray(self.keys, np.int64), np.asarray(self.values, np.float64)
        a = int(self.n_annotators)
        if keys.shape != values.shape or keys.ndim != 1:
            raise ValueError(f"keys and values must be 1-D and of one length, got {keys.shape} and {values.shape}")
        if keys.size and (np.any(keys[1:] <= keys[:-1]) or keys[0] < 0 or keys[-1] >= a * a):
            raise ValueError("pair keys must be distinct, sorted and in [0, A * A)")
        if keys.size and np.any(keys // a == keys % a):
            raise ValueError("the diagonal is not a pair: keys j * A + j are not allowed")
        if self.prior_kind not in PRIOR_KINDS:
            raise ValueError(f"prior_kind must be one of {PRIOR_KINDS}, got {self.prior_kind!r}")
        prior = {name: np.asarray(array, np.float64) for name, array in self.prior.items()}
        expected = {"constant": {"value"}, "mean": {"per_annotator"}, "kappa": {"agreement", "marginals"}}[self.prior_kind]
        if set(prior) != expected:
            raise ValueError(f"a {self.prior_kind!r} prior takes arrays {sorted(expected)}, got {sorted(prior)}")
        if self.prior_kind != "constant" and any(len(array) != a for array in prior.values()):
            raise ValueError(f"per-annotator prior arrays must have {a} rows")
        if self.annotator_ids is not None:
            if len(self.annotator_ids) != a:
                raise ValueError(f"{len(self.annotator_ids)} annotator ids for {a} annotators")
            object.__setattr__(self, "annotator_ids", pd.Index(self.annotator_ids, name="annotator_id"))
        object.__setattr__(self, "n_annotators", a)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "prior", prior)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_dense(cls, matrix, annotator_ids: pd.Index | None = None) -> PairSimilarity:
        """Every nonzero off-diagonal entry of an (A, A) matrix as a pair, prior 0 (exact)."""
        if isinstance(matrix, pd.DataFrame):
            annotator_ids = matrix.index.copy() if annotator_ids is None else annotator_ids
            matrix = matrix.to_numpy(np.float64)
        matrix = np.asarray(matrix, np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"a similarity matrix must be (A, A), got {matrix.shape}")
        a = matrix.shape[0]
        flat = matrix.reshape(-1)
        keys = np.flatnonzero(flat)
        keys = keys[keys // max(a, 1) != keys % max(a, 1)]
        return cls(a, keys, flat[keys], annotator_ids=annotator_ids)

    @classmethod
    def constant(cls, n_annotators: int, value: float = 0.0, annotator_ids: pd.Index | None = None) -> PairSimilarity:
        """Every pair ``value`` (0: no similarity at all, e.g. for the crowd baselines)."""
        return cls(n_annotators, np.zeros(0, np.int64), np.zeros(0), "constant", {"value": np.array([value])},
                   annotator_ids)

    def with_ids(self, annotator_ids: pd.Index | None) -> PairSimilarity:
        return PairSimilarity(self.n_annotators, self.keys, self.values, self.prior_kind, self.prior, annotator_ids)

    # ---- reading -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.n_annotators, self.n_annotators

    @property
    def empty(self) -> bool:
        """No annotators (a method's placeholder ``refined_similarity``: it has none of its own)."""
        return self.n_annotators == 0

    @property
    def n_pairs(self) -> int:
        """Ordered pairs with their own value (the rest take the prior)."""
        return int(self.keys.size)

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.values.nbytes + sum(array.nbytes for array in self.prior.values())

    def at(self, rows, cols) -> np.ndarray:
        """The similarity at pairs ``(rows[i], cols[i])`` (int arrays, broadcast), float64."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, np.int64), np.asarray(cols, np.int64))
        values = np.empty(rows.shape)
        flat_rows, flat_cols, flat_values = rows.reshape(-1), cols.reshape(-1), values.reshape(-1)
        for lo in range(0, flat_rows.size, _LOOKUP_CHUNK):  # bounds the (chunk, C * C) temporaries
            part = slice(lo, lo + _LOOKUP_CHUNK)
            flat_values[part] = _prior_values(self.prior_kind, self.prior, flat_rows[part], flat_cols[part])
        slot, found = find_sorted(self.keys, rows * self.n_annotators + cols)
        values[found] = self.values[slot[found]]
        return np.where(rows == cols, 0.0, values)

    def to_dense(self, annotators: np.ndarray | None = None) -> np.ndarray:
        """The (A, A) float64 matrix, or the (m, m) block of the annotator positions ``annotators``."""
        a = self.n_annotators
        chosen = np.arange(a) if annotators is None else np.asarray(annotators, np.int64)
        dense = self._dense_prior(chosen)
        if annotators is None:
            dense.flat[self.keys] = self.values
        else:
            position = np.full(a, -1)
            position[chosen] = np.arange(chosen.size)
            j, k = position[self.keys // a], position[self.keys % a]
            keep = (j >= 0) & (k >= 0)
            dense[j[keep], k[keep]] = self.values[keep]
        np.fill_diagonal(dense, 0.0)
        return dense

    def _dense_prior(self, chosen: np.ndarray) -> np.ndarray:
        """The prior rule on every pair of ``chosen`` (products, not lookups: (m, m) float64)."""
        m = chosen.size
        if self.prior_kind == "constant":
            return np.full((m, m), float(self.prior["value"][0]))
        if self.prior_kind == "mean":
            means = self.prior["per_annotator"][chosen]
            return np.clip((means[:, None] + means[None, :]) / 2, 0.0, 1.0)
        agreement, marginals = self.prior["agreement"][chosen], self.prior["marginals"][chosen]
        return kappa_from_rates(agreement @ agreement.T, marginals @ marginals.T)

    def to_frame(self, annotators: np.ndarray | None = None) -> pd.DataFrame:
        """``to_dense`` as a DataFrame named by ``annotator_ids`` (positions where there are none)."""
        chosen = np.arange(self.n_annotators) if annotators is None else np.asarray(annotators, np.int64)
        names = self.annotator_ids[chosen] if self.annotator_ids is not None else pd.Index(chosen)
        return pd.DataFrame(self.to_dense(chosen), index=names.copy(), columns=names.copy())

    def __array__(self, dtype=None, copy=None):
        dense = self.to_dense()
        return dense if dtype is None else dense.astype(dtype)

    def tensor(self, device="cpu", dtype=None) -> PairSimilarityTensor:
        """A torch view for lookups on ``device`` (``similarity[rows, cols]``), ``dtype`` float32 by default."""
        import torch

        dtype = torch.float32 if dtype is None else dtype
        return PairSimilarityTensor(
            self.n_annotators,
            torch.from_numpy(self.keys).to(device),
            torch.from_numpy(self.values).to(device=device, dtype=dtype),
            self.prior_kind,
            {name: torch.from_numpy(array).to(device=device, dtype=dtype) for name, array in self.prior.items()},
        )

    # ---- storage -------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (``PairSimilarityDataset`` writes them as one ``.npz``; no pickles)."""
        arrays = {"n_annotators": np.array(self.n_annotators), "keys": self.keys, "values": self.values,
                  "prior_kind": np.array(self.prior_kind)}
        arrays.update({f"prior.{name}": array for name, array in self.prior.items()})
        if self.annotator_ids is not None:
            arrays["annotator_ids"] = np.asarray(self.annotator_ids.astype(str), dtype=str)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> PairSimilarity:
        ids = pd.Index(arrays["annotator_ids"].astype(object), name="annotator_id") if "annotator_ids" in arrays else None
        prior = {name.split(".", 1)[1]: arrays[name] for name in arrays if name.startswith("prior.")}
        return cls(int(arrays["n_annotators"]), arrays["keys"], arrays["values"], str(arrays["prior_kind"]), prior, ids)


def as_pair_similarity(similarity) -> PairSimilarity:
    """``similarity`` as it is if a ``PairSimilarity``, else an (A, A) matrix's (``from_dense``)."""
    return similarity if isinstance(similarity, PairSimilarity) else PairSimilarity.from_dense(similarity)


@dataclass(frozen=True, eq=False)
class PairSimilarityTensor:
    """``PairSimilarity`` on a torch device: ``self[rows, cols]`` (long tensors, broadcast) looks
    each pair up among the sorted keys (``searchsorted``) and takes the prior where it is absent."""

    n_annotators: int
    keys: torch.Tensor
    values: torch.Tensor
    prior_kind: str
    prior: dict[str, torch.Tensor]

    def to(self, dtype) -> PairSimilarityTensor:
        if dtype == self.values.dtype:
            return self
        return PairSimilarityTensor(self.n_annotators, self.keys, self.values.to(dtype), self.prior_kind,
                                    {name: t.to(dtype) for name, t in self.prior.items()})

    def __getitem__(self, index):
        import torch

        rows, cols = torch.broadcast_tensors(*index)
        values = _prior_values(self.prior_kind, self.prior, rows, cols).to(self.values.dtype)
        if self.keys.numel():
            flat = rows * self.n_annotators + cols
            slot = torch.searchsorted(self.keys, flat).clamp_(max=self.keys.numel() - 1)
            values = torch.where(self.keys[slot] == flat, self.values[slot], values)
        return torch.where(rows == cols, torch.zeros_like(values), values)
