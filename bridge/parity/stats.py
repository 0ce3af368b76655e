"""Streaming error statistics of one output: fed batch by batch, memory bounded whatever the number of images.

Exact for everything except the quantiles (median, p99), the failing-element count and the smallest passing rtol
once an output has more than `EXACT_LIMIT` elements. Up to that many elements the per-element errors are kept and
these are exact (quantiles with numpy's linear interpolation). Beyond it they come from log-scale histograms of the
absolute and relative errors with `BINS_PER_DECADE` bins per decade: a quantile is the upper edge of its bin (at
most 10**(1/100) - 1 = 2.3% above the exact value, never below it); the smallest passing rtol and the failing count
are upper bounds too. Pass/fail, the smallest passing atol, max/mean errors and cosine similarity are always exact.

Mergeable: statistics fed different batches (on different workers) combine with `merge` into exactly what one
`ErrorStats` fed all of them would hold, whatever the split and the order. Maxima and counts merge exactly;
histograms add bin by bin (so a merged histogram quantile is the one the local run computes, within the same
2.3% bound of the exact value); the kept per-element errors concatenate while the total stays within
`exact_limit` (the same test the local run applies, so merged quantiles are exact exactly when local ones are);
sums (means, cosine) are kept exactly until read (`_ExactSum`), so they never depend on the order of addition.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

EXACT_LIMIT = 1 << 16  # elements per output kept exactly (16 bytes each: |a-b|, relative error)
BINS_PER_DECADE = 100
_LOW_DECADE, _HIGH_DECADE = -50, 40  # bins cover 1e-50 .. 1e40; values outside are clipped into the end bins
_NBINS = (_HIGH_DECADE - _LOW_DECADE) * BINS_PER_DECADE


def _bin_index(values: np.ndarray) -> np.ndarray:
    """Histogram bins of positive finite values."""
    idx = np.floor(np.log10(values) * BINS_PER_DECADE).astype(np.int64) - _LOW_DECADE * BINS_PER_DECADE
    return np.clip(idx, 0, _NBINS - 1)


def _bin_upper(index: int) -> float:
    return 10.0 ** ((index + 1 + _LOW_DECADE * BINS_PER_DECADE) / BINS_PER_DECADE)


def _bin_lower(index: int) -> float:
    return 10.0 ** ((index + _LOW_DECADE * BINS_PER_DECADE) / BINS_PER_DECADE)


class _ExactSum:
    """A sum of floats kept without rounding until read (Shewchuk's partials, the algorithm of math.fsum).

    The value is the exact sum rounded once, so adding the same numbers in any order or grouping, or merging two
    partial sums, gives the same float: what makes statistics merged across workers equal the local ones.
    Non-finite terms are summed apart (inf + -inf is nan, as in plain addition).
    """

    __slots__ = ("partials", "special")

    def __init__(self):
        self.partials: list = []
        self.special = 0.0  # the sum of the non-finite terms: 0.0, +-inf or nan

    def add(self, x: float) -> None:
        x = float(x)
        if not math.isfinite(x):
            self.special += x
            return
        i = 0
        for y in self.partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                self.partials[i] = lo
                i += 1
            x = hi
        self.partials[i:] = [x]

    def merge(self, other: "_ExactSum") -> None:
        for x in other.partials:
            self.add(x)
        self.special += other.special

    @property
    def value(self) -> float:
        if self.special != 0.0:  # also nan
            return self.special
        try:
            return math.fsum(self.partials)
        except (OverflowError, ValueError):  # beyond the float range
            return math.fsum(p / 2.0 for p in self.partials) * 2.0

    def __getstate__(self):
        return self.partials, self.special

    def __setstate__(self, state):
        self.partials, self.special = state


class _Histogram:
    """Counts of non-negative values in log-scale bins, with separate counts for zero and infinity.

    The bins (9,000, 72 KB each array) are allocated at the first finite non-zero value: an output whose values
    all match (every |a-b| zero, as in most verifications) costs none, however many outputs a model has (ResNet V2
    50's 106 batch-norm statistics held 30 MiB of empty bins)."""

    def __init__(self, track_max_of_other: bool = False):
        self.zero = 0
        self.inf = 0
        self.track = track_max_of_other
        self.counts = None  # allocated by _bins
        # Per bin of |a-b|: how many elements exceed rtol*|a|, and the largest relative error seen.
        self.exceed = None
        self.max_other = None
        self.inf_exceed = 0
        self.inf_max_other = 0.0

    def _bins(self) -> None:
        if self.counts is None:
            self.counts = np.zeros(_NBINS, np.int64)
            if self.track:
                self.exceed = np.zeros(_NBINS, np.int64)
                self.max_other = np.zeros(_NBINS, np.float64)

    @property
    def total(self) -> int:
        return self.zero + self.inf + (int(self.counts.sum()) if self.counts is not None else 0)

    def add(self, values: np.ndarray, exceed: np.ndarray | None = None, other: np.ndarray | None = None) -> None:
        zero = values == 0
        inf = np.isinf(values)
        self.zero += int(zero.sum())
        self.inf += int(inf.sum())
        mid = ~(zero | inf)
        if mid.any():
            self._bins()
            idx = _bin_index(values[mid])
            self.counts += np.bincount(idx, minlength=_NBINS)
            if self.track:
                self.exceed += np.bincount(idx[exceed[mid]], minlength=_NBINS)
                np.maximum.at(self.max_other, idx, other[mid])
        if self.track and inf.any():
            self.inf_exceed += int(exceed[inf].sum())
            self.inf_max_other = max(self.inf_max_other, float(other[inf].max()))

    def merge(self, other: "_Histogram") -> None:
        """Add `other`'s counts bin by bin: exactly the histogram of both sets of values."""
        self.zero += other.zero
        self.inf += other.inf
        if other.counts is not None:
            self._bins()
            self.counts += other.counts
            if self.track:
                self.exceed += other.exceed
                np.maximum(self.max_other, other.max_other, out=self.max_other)
        if self.track:
            self.inf_exceed += other.inf_exceed
            self.inf_max_other = max(self.inf_max_other, other.inf_max_other)

    def __getstate__(self):
        """Sparse: a few hundred bins are used of 9,000, so workers ship the non-zero ones only."""
        state = dict(self.__dict__)
        for name in ("counts", "exceed", "max_other"):
            array = state[name]
            if array is not None:
                nonzero = np.flatnonzero(array)
                state[name] = (nonzero, array[nonzero])
        return state

    def __setstate__(self, state):
        for name, dtype in (("counts", np.int64), ("exceed", np.int64), ("max_other", np.float64)):
            if state[name] is not None:
                index, values = state[name]
                array = np.zeros(_NBINS, dtype)
                array[index] = values
                state[name] = array
        self.__dict__.update(state)

    def quantile(self, q: float) -> float:
        """Upper bound of the q-quantile (nearest rank)."""
        total = self.total
        if not total:
            return 0.0
        rank = max(1, math.ceil(q * total))
        if rank <= self.zero:
            return 0.0
        if self.counts is None:  # no finite non-zero value: the rest is infinite
            return math.inf
        cumulative = self.zero + np.cumsum(self.counts)
        index = int(np.searchsorted(cumulative, rank))
        return _bin_upper(index) if index < _NBINS else math.inf

    def max_other_above(self, threshold: float) -> float:
        """Upper bound of the largest relative error among elements whose |a-b| exceeds `threshold`."""
        first = self._first_bin_reaching(threshold)
        best = float(self.max_other[first:].max()) if first < _NBINS and self.max_other is not None else 0.0
        return max(best, self.inf_max_other if self.inf else 0.0)

    def exceed_above(self, threshold: float) -> int:
        """Upper bound of the elements with |a-b| > threshold that also exceed rtol*|a|."""
        first = self._first_bin_reaching(threshold)
        return (int(self.exceed[first:].sum()) if self.exceed is not None else 0) + self.inf_exceed

    def _first_bin_reaching(self, threshold: float) -> int:
        """The first bin that may hold values above `threshold` (the bin holding it, or the one after)."""
        if threshold <= 0:
            return 0
        index = int(_bin_index(np.array([threshold]))[0])
        return index + 1 if _bin_upper(index) <= threshold else index


@dataclasses.dataclass
class Worst:
    """Where |a-b| is largest: the image (when the output is batched), the element index and both values."""

    image: int | None
    image_name: str | None
    index: list
    a: float
    b: float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class ErrorStats:
    """Accumulates the errors between reference `a` and candidate `b` of one output over batches.

    `rtol` must be known up front (it never depends on the data); `atol` is applied at the end, because the
    default is relative to max|a| over the whole run.
    """

    def __init__(self, rtol: float, logits: bool = False, exact_limit: int = EXACT_LIMIT):
        self.rtol = rtol
        self.logits = logits
        self.exact_limit = exact_limit
        self.error: str | None = None  # a structural mismatch (shape) that makes values incomparable
        self.notes: list = []
        self.count = 0
        self.batches = 0
        self.samples = 0
        self.sample_shape: tuple | None = None
        self.batched = False
        self.identical = True
        self.scale = 0.0  # max |a| over finite elements
        self._sum_abs = _ExactSum()
        self._sum_rel = _ExactSum()
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.worst: Worst | None = None
        self._worst_order = 0  # where the worst element's batch starts: the earliest wins a tie, as when streaming
        self.min_atol = 0.0  # max |a-b| over elements with |a-b| > rtol*|a|: the smallest atol that passes
        self.nonfinite_mismatch = 0
        self._dot = _ExactSum()
        self._norm_a = _ExactSum()
        self._norm_b = _ExactSum()
        self.top1 = 0
        self.top5 = 0
        self.rows = 0
        self.classes = None
        self._abs_hist = _Histogram(track_max_of_other=True)
        self._rel_hist = _Histogram()
        self._exact: list | None = []  # (|a-b|, rel, exceeds rtol) per batch while within exact_limit

    # -- feeding ---------------------------------------------------------------------------------------------

    def update(self, a, b, *, start: int | None = None, names: list | None = None) -> None:
        """Add one batch. `start`: index of the batch's first image when the output is batched (else None)."""
        if self.error:
            return
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            self.error = f"shape {list(a.shape)} in A but {list(b.shape)} in B"
            return
        if a.dtype != b.dtype:
            note = f"dtype {a.dtype} in A, {b.dtype} in B"
            if note not in self.notes:
                self.notes.append(note)
        batched = start is not None and a.ndim >= 1
        if self.sample_shape is None:
            self.sample_shape = a.shape[1:] if batched else a.shape
            self.batched = batched
        elif (a.shape[1:] if batched else a.shape) != self.sample_shape:
            self.error = f"shape changes between batches: {list(self.sample_shape)} then {list(a.shape)}"
            return
        self.batches += 1
        self.samples += a.shape[0] if batched else 1
        if a.size == 0:
            return
        self.identical = self.identical and a.dtype == b.dtype and _equal(a, b)
        d, rel, exceed, absa = _errors(a, b, self.rtol)
        af, bf = _as_float(a), _as_float(b)
        finite = np.isfinite(af) & np.isfinite(bf)

        self.count += d.size
        self.nonfinite_mismatch += int(np.isinf(d).sum())
        finite_a = absa[np.isfinite(absa)]
        if finite_a.size:
            self.scale = max(self.scale, float(finite_a.max()))
        self._sum_abs.add(d.sum())
        self._sum_rel.add(rel.sum())
        self.max_rel = max(self.max_rel, float(rel.max()))
        worst = int(np.argmax(d))
        if self.worst is None or d[worst] > self.max_abs:
            self.max_abs = float(d[worst])
            self.worst = self._locate(worst, a.shape, batched, start, names, af[worst], bf[worst])
            self._worst_order = start if start is not None else self.batches - 1
        if exceed.any():
            self.min_atol = max(self.min_atol, float(d[exceed].max()))
        self._dot.add(np.dot(af[finite], bf[finite]))
        self._norm_a.add(np.dot(af[finite], af[finite]))
        self._norm_b.add(np.dot(bf[finite], bf[finite]))

        self._abs_hist.add(d, exceed, rel)
        self._rel_hist.add(rel)
        if self._exact is not None:
            if self.count <= self.exact_limit:
                self._exact.append((d, rel, exceed))
            else:
                self._exact = None
        if self.logits and batched and a.ndim == 2 and a.shape[1] >= 2:
            self._update_topk(a, b)

    def merge(self, other: "ErrorStats") -> "ErrorStats":
        """Add the statistics of `other` (fed other batches of the same output) to these; returns self.

        The result equals one `ErrorStats` fed all the batches (see the module docstring), provided the batches
        are the same and each was fed with its `start` in the whole run, so the worst element is found where
        streaming finds it (the earliest batch wins a tie).
        """
        if other.rtol != self.rtol:
            raise ValueError(f"cannot merge statistics made with rtol {self.rtol} and {other.rtol}")
        self.logits = self.logits or other.logits
        for note in other.notes:
            if note not in self.notes:
                self.notes.append(note)
        if self.error is None and other.error is not None:
            self.error = other.error
        if other.sample_shape is None:
            return self
        if self.sample_shape is None:
            self.sample_shape, self.batched = other.sample_shape, other.batched
        elif other.sample_shape != self.sample_shape or other.batched != self.batched:
            if self.error is None:
                self.error = (f"shape changes between batches: {list(self.sample_shape)} and "
                              f"{list(other.sample_shape)}")
            return self
        self.batches += other.batches
        self.samples += other.samples
        if not other.count:
            return self
        self.count += other.count
        self.identical = self.identical and other.identical
        self.nonfinite_mismatch += other.nonfinite_mismatch
        self.scale = max(self.scale, other.scale)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.min_atol = max(self.min_atol, other.min_atol)
        if other.worst is not None and (
                self.worst is None or other.max_abs > self.max_abs
                or (other.max_abs == self.max_abs and other._worst_order < self._worst_order)):
            self.max_abs, self.worst, self._worst_order = other.max_abs, other.worst, other._worst_order
        for mine, theirs in ((self._sum_abs, other._sum_abs), (self._sum_rel, other._sum_rel),
                             (self._dot, other._dot), (self._norm_a, other._norm_a), (self._norm_b, other._norm_b)):
            mine.merge(theirs)
        self._abs_hist.merge(other._abs_hist)
        self._rel_hist.merge(other._rel_hist)
        if self._exact is not None and other._exact is not None and self.count <= self.exact_limit:
            self._exact = self._exact + other._exact
        else:
            self._exact = None
        self.top1 += other.top1
        self.top5 += other.top5
        self.rows += other.rows
        self.classes = self.classes or other.classes
        return self

    def _locate(self, flat: int, shape: tuple, batched: bool, start, names, a_value, b_value) -> Worst:
        index = [int(i) for i in np.unravel_index(flat, shape)]
        if batched:
            row = index[0]
            return Worst(start + row, names[row] if names and row < len(names) else None, index[1:],
                         float(a_value), float(b_value))
        return Worst(None, None, index, float(a_value), float(b_value))

    def _update_topk(self, a: np.ndarray, b: np.ndarray) -> None:
        """Top-1: same argmax; top-5: A's top class is among B's five highest (only when there are > 5 classes)."""
        self.classes = a.shape[1]
        top_a = np.argmax(a, axis=1)
        self.top1 += int((top_a == np.argmax(b, axis=1)).sum())
        if a.shape[1] > 5:
            top5_b = np.argpartition(-b, 5, axis=1)[:, :5]
            self.top5 += int((top5_b == top_a[:, None]).any(axis=1).sum())
        self.rows += a.shape[0]

    # -- results -----------------------------------------------------------------------------------------------

    @property
    def exact(self) -> bool:
        """Whether quantiles, failing count and smallest passing rtol are exact (see the module docstring)."""
        return self._exact is not None

    def passes(self, atol: float) -> bool:
        """The tolerance check: no element with |a-b| > atol and |a-b| > rtol*|a| (and no structural error)."""
        return self.error is None and self.min_atol <= atol

    def failing(self, atol: float) -> int:
        """How many elements fail at this atol (an upper bound when not `exact`)."""
        if self.passes(atol) or self.error:
            return 0
        if self._exact is not None:
            return int(sum(int((e & (d > atol)).sum()) for d, _, e in self._exact))
        return max(1, self._abs_hist.exceed_above(atol))

    def min_rtol(self, atol: float) -> float:
        """The smallest rtol that passes at this atol: max |a-b|/|a| over elements with |a-b| > atol."""
        if self._exact is not None:
            values = [r[d > atol] for d, r, _ in self._exact]
            values = [v for v in values if v.size]
            return float(max(v.max() for v in values)) if values else 0.0
        return self._abs_hist.max_other_above(atol)

    def quantile(self, q: float, relative: bool = False) -> float:
        if not self.count:
            return 0.0
        if self._exact is not None:
            values = np.concatenate([r if relative else d for d, r, _ in self._exact])
            if np.isinf(values).any():  # np.quantile interpolates inf into nan: take nearest rank instead
                return float(np.sort(values)[max(0, math.ceil(q * values.size) - 1)])
            return float(np.quantile(values, q))
        return (self._rel_hist if relative else self._abs_hist).quantile(q)

    @property
    def sum_abs(self) -> float:
        return self._sum_abs.value

    @property
    def sum_rel(self) -> float:
        return self._sum_rel.value

    @property
    def dot(self) -> float:
        return self._dot.value

    @property
    def norm_a(self) -> float:
        return self._norm_a.value

    @property
    def norm_b(self) -> float:
        return self._norm_b.value

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.count if self.count else 0.0

    @property
    def mean_rel(self) -> float:
        return self.sum_rel / self.count if self.count else 0.0

    @property
    def cosine(self) -> float | None:
        """Cosine similarity of A and B flattened over the whole run (finite elements); 1 when both are zero."""
        if not self.count:
            return None
        norm_a, norm_b = self.norm_a, self.norm_b
        if norm_a == 0 and norm_b == 0:
            return 1.0
        if norm_a == 0 or norm_b == 0:
            return 0.0
        return self.dot / math.sqrt(norm_a * norm_b)

    @property
    def top1_agreement(self) -> float | None:
        return self.top1 / self.rows if self.rows else None

    @property
    def top5_agreement(self) -> float | None:
        return self.top5 / self.rows if self.rows and self.classes and self.classes > 5 else None


def _as_float(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.number) or x.dtype == bool:
        return x.astype(np.float64).ravel()
    return np.zeros(x.size)  # strings and other objects: compared for equality only, in _errors


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if np.issubdtype(a.dtype, np.inexact):
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _errors(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple:
    """Per element: |a-b|, relative error |a-b|/|a|, whether |a-b| > rtol*|a|, and |a|, as flat float64 arrays.

    Equal non-finite values (both NaN, or the same infinity) count as equal; any other non-finite pair is an
    infinite error. x/0 is inf, 0/0 is 0.
    """
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        d = np.where(a.ravel() == b.ravel(), 0.0, np.inf)
        return d, d.copy(), np.isinf(d), np.zeros(d.size)
    af, bf = _as_float(a), _as_float(b)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(af - bf)
    bad = ~np.isfinite(d)
    if bad.any():
        same = (af[bad] == bf[bad]) | (np.isnan(af[bad]) & np.isnan(bf[bad]))
        d[bad] = np.where(same, 0.0, np.inf)
    absa = np.abs(af)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = d / absa
    rel[d == 0] = 0.0
    rel[np.isinf(d)] = np.inf
    with np.errstate(invalid="ignore"):
        exceed = (d > rtol * absa) | np.isinf(d)
    return d, rel, exceed, absa
