"""The parity statistics and tolerance rules, checked element by element against plain numpy on the same arrays.

The oracle here is the definition itself, written out in numpy: an element fails exactly when
|a-b| > atol and |a-b| > rtol*|a| (a: the reference).
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from bridge.parity.tolerance import DEFAULT_RTOL, Tolerances
from bridge.parity.stats import EXACT_LIMIT, ErrorStats
from legacy.errors import InvalidInputError


def _pair(seed: int, shape=(6, 50), scale: float = 3.0, noise: float = 1e-4):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * scale).astype(np.float32)
    b = (a + rng.standard_normal(shape) * noise).astype(np.float32)
    return a, b


def _fed(a, b, rtol, batch=2, exact_limit=EXACT_LIMIT, logits=False) -> ErrorStats:
    """ErrorStats fed in batches of `batch` rows, as the harness streams them."""
    stats = ErrorStats(rtol, logits=logits, exact_limit=exact_limit)
    for start in range(0, len(a), batch):
        stats.update(a[start:start + batch], b[start:start + batch], start=start)
    return stats


def _numpy_errors(a, b):
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    d = np.abs(a64 - b64)
    return a64, b64, d


@pytest.mark.parametrize("exact_limit", [EXACT_LIMIT, 10], ids=["exact", "histogram"])
@pytest.mark.parametrize("atol,rtol", [(0.0, 0.0), (1e-4, 0.0), (0.0, 1e-4), (5e-5, 5e-5), (1.0, 0.0), (0.0, 1.0)])
def test_an_element_fails_only_when_it_exceeds_both_tolerances(atol, rtol, exact_limit):
    a, b = _pair(0)
    a64, _, d = _numpy_errors(a, b)
    failing = (d > atol) & (d > rtol * np.abs(a64))
    stats = _fed(a, b, rtol, exact_limit=exact_limit)
    assert stats.passes(atol) == (not failing.any())
    if exact_limit == EXACT_LIMIT:
        assert stats.exact and stats.failing(atol) == int(failing.sum())
    else:  # beyond the exact limit the count is an upper bound, never an undercount
        assert not stats.exact and stats.failing(atol) >= int(failing.sum())
        assert (stats.failing(atol) == 0) == (not failing.any())


@pytest.mark.parametrize("exact_limit", [EXACT_LIMIT, 10], ids=["exact", "histogram"])
def test_smallest_passing_tolerances_are_sufficient_and_necessary(exact_limit):
    a, b = _pair(1)
    a64, _, d = _numpy_errors(a, b)
    rtol = 1e-5
    stats = _fed(a, b, rtol, exact_limit=exact_limit)
    expected_atol = d[d > rtol * np.abs(a64)].max()
    assert stats.min_atol == expected_atol  # always exact
    assert stats.passes(stats.min_atol)
    assert not stats.passes(np.nextafter(stats.min_atol, 0))
    atol = float(np.median(d))
    expected_rtol = (d / np.abs(a64))[d > atol].max()
    if stats.exact:
        assert stats.min_rtol(atol) == expected_rtol
        at_rtol = _fed(a, b, stats.min_rtol(atol))
        assert at_rtol.passes(atol)
        assert not _fed(a, b, np.nextafter(stats.min_rtol(atol), 0)).passes(atol)
    else:
        assert stats.min_rtol(atol) >= expected_rtol
        assert _fed(a, b, stats.min_rtol(atol)).passes(atol)


def test_error_statistics_match_numpy():
    a, b = _pair(2, shape=(8, 40))
    a64, b64, d = _numpy_errors(a, b)
    rel = d / np.abs(a64)
    stats = _fed(a, b, DEFAULT_RTOL, batch=3)
    assert stats.count == a.size and stats.samples == 8 and stats.batches == 3
    assert stats.max_abs == d.max()
    assert stats.mean_abs == pytest.approx(d.mean(), rel=1e-12)
    assert stats.quantile(0.5) == pytest.approx(np.quantile(d, 0.5), rel=1e-12)
    assert stats.quantile(0.99) == pytest.approx(np.quantile(d, 0.99), rel=1e-12)
    assert stats.max_rel == rel.max()
    assert stats.mean_rel == pytest.approx(rel.mean(), rel=1e-12)
    assert stats.quantile(0.99, relative=True) == pytest.approx(np.quantile(rel, 0.99), rel=1e-12)
    cosine = np.dot(a64, b64) / np.sqrt(np.dot(a64, a64) * np.dot(b64, b64))
    assert stats.cosine == pytest.approx(cosine, abs=1e-12)
    assert stats.scale == np.abs(a64).max()
    flat = int(np.argmax(d))
    assert stats.worst.image == flat // 40 and stats.worst.index == [flat % 40]
    assert stats.worst.a == a64[flat] and stats.worst.b == b64[flat]


def test_histogram_quantiles_bound_the_exact_ones_within_the_stated_precision():
    a, b = _pair(3, shape=(20, 100), noise=1e-3)
    _, _, d = _numpy_errors(a, b)
    stats = _fed(a, b, DEFAULT_RTOL, exact_limit=100)
    assert not stats.exact
    for q in (0.5, 0.99):
        exact = np.sort(d)[math.ceil(q * d.size) - 1]  # nearest rank, as the histogram defines it
        assert exact <= stats.quantile(q) <= exact * 10 ** (1 / 100) * (1 + 1e-12)


def test_batches_and_one_feed_agree():
    a, b = _pair(4, shape=(10, 30))
    streamed, whole = _fed(a, b, 1e-5, batch=3), _fed(a, b, 1e-5, batch=10)
    for attr in ("max_abs", "max_rel", "min_atol", "count", "scale"):
        assert getattr(streamed, attr) == getattr(whole, attr)
    assert streamed.cosine == pytest.approx(whole.cosine, abs=1e-12)
    assert streamed.mean_abs == pytest.approx(whole.mean_abs, rel=1e-12)


def test_memory_is_bounded_beyond_the_exact_limit():
    a, b = _pair(5, shape=(40, 100))
    stats = _fed(a, b, 1e-5, batch=4, exact_limit=1000)
    assert not stats.exact and stats._exact is None  # the per-element errors were dropped
    assert stats.count == 4000


@pytest.mark.parametrize("a,b,fails", [
    ([np.nan], [np.nan], False),
    ([np.inf], [np.inf], False),
    ([-np.inf], [-np.inf], False),
    ([np.inf], [-np.inf], True),
    ([np.nan], [1.0], True),
    ([1.0], [np.nan], True),
    ([1.0], [np.inf], True),
    ([0.0], [-0.0], False),
])
def test_non_finite_values(a, b, fails):
    stats = _fed(np.array([a], np.float32), np.array([b], np.float32), 1e-5)
    assert stats.passes(1e30) == (not fails)
    if fails:
        assert math.isinf(stats.min_atol)


def test_shape_mismatch_is_an_error_not_a_number():
    stats = ErrorStats(1e-5)
    stats.update(np.zeros((2, 3)), np.zeros((2, 4)), start=0)
    assert stats.error == "shape [2, 3] in A but [2, 4] in B"
    assert not stats.passes(math.inf)
    stats = ErrorStats(1e-5)
    stats.update(np.zeros((2, 3)), np.zeros((2, 3)), start=0)
    stats.update(np.zeros((2, 5)), np.zeros((2, 5)), start=2)
    assert "shape changes between batches" in stats.error


def test_top_k_agreement():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((50, 12)).astype(np.float32)
    b = (a + rng.standard_normal((50, 12)) * 0.5).astype(np.float32)
    stats = _fed(a, b, 1e-5, batch=7, logits=True)
    top_a = a.argmax(1)
    assert stats.top1_agreement == np.mean(top_a == b.argmax(1))
    top5_b = np.argsort(-b, axis=1)[:, :5]
    assert stats.top5_agreement == np.mean([top_a[i] in top5_b[i] for i in range(50)])
    assert 0 < stats.top1_agreement < 1  # the noise does change some argmaxes here
    few = _fed(a[:, :5], b[:, :5], 1e-5, logits=True)
    assert few.top5_agreement is None  # five classes or fewer: top-5 says nothing


# -- tolerance options -------------------------------------------------------------------------------------------


def test_tolerance_precedence_full_name_then_key_then_mode_then_plain_value():
    tol = Tolerances.parse(atol=["1e-1", "inference:1e-2", "default:1e-3", "image_classification/default:1e-4"])
    assert tol.resolve("image_classification/default", "default", "inference")[0] == 1e-4
    assert tol.resolve("default/default", "default", "inference")[0] == 1e-3
    assert tol.resolve("image_feature_vector/conv1", "conv1", "inference")[0] == 1e-2
    assert tol.resolve("image_feature_vector/conv1", "conv1", "training")[0] == 1e-1
    atol, rtol, atol_from, rtol_from = Tolerances.parse().resolve("default/default", "default", "inference")
    assert atol is None and rtol == DEFAULT_RTOL and atol_from == rtol_from == "default"


def test_tolerance_forms_agree():
    as_text = Tolerances.parse(atol=["2e-3", "a/b:1"], rtol="0.5")
    as_dict = Tolerances.parse(atol={"*": 2e-3, "a/b": 1}, rtol=0.5)
    assert as_text == as_dict
    assert Tolerances.parse(atol="sig:name:with:colons:3").atol == {"sig:name:with:colons": 3.0}


@pytest.mark.parametrize("value", ["abc", "default:", "-1", "inf", "nan", "default:x"])
def test_bad_tolerance_is_refused_with_the_fix(value):
    # In Python spelling (atol=...) here; the command line's (--atol ...) is tested in tests/bridge/cli.
    with pytest.raises(InvalidInputError, match=r"^atol(=| must)"):
        Tolerances.parse(atol=[value])


def _summary(stats: ErrorStats, atol: float) -> dict:
    """Everything a report reads from the statistics."""
    return dict(count=stats.count, batches=stats.batches, samples=stats.samples, shape=stats.sample_shape,
                identical=stats.identical, scale=stats.scale, max_abs=stats.max_abs, mean_abs=stats.mean_abs,
                max_rel=stats.max_rel, mean_rel=stats.mean_rel, cosine=stats.cosine, min_atol=stats.min_atol,
                passes=stats.passes(atol), failing=stats.failing(atol), min_rtol=stats.min_rtol(atol),
                quantiles=[stats.quantile(q, relative=r) for q in (0.5, 0.99) for r in (False, True)],
                exact=stats.exact, worst=stats.worst.to_json(), top1=stats.top1_agreement,
                top5=stats.top5_agreement, nonfinite=stats.nonfinite_mismatch)


@pytest.mark.parametrize("exact_limit", [EXACT_LIMIT, 200, 10], ids=["exact", "exact-then-histogram", "histogram"])
def test_statistics_merged_in_any_split_and_order_equal_one_stream(exact_limit):
    """What workers compute on different batches, merged in any order, equals one stream of all the batches,
    bit for bit: also the means and cosine (exact sums) and the worst element (the earliest batch wins a tie)."""
    a, b = _pair(5, shape=(40, 12), noise=1e-3)
    b[7, 3], b[31, 3] = a[7, 3] + 1.0, a[31, 3] + 1.0  # the same largest error twice: the first one is reported
    a[20, 0], b[20, 0] = 0.0, 1e-3  # x/0: an infinite relative error
    rtol, atol = 1e-4, 2e-4
    one = _fed(a, b, rtol, batch=4, exact_limit=exact_limit, logits=True)
    parts = []
    for start in range(0, len(a), 4):
        part = ErrorStats(rtol, logits=True, exact_limit=exact_limit)
        part.update(a[start:start + 4], b[start:start + 4], start=start)
        parts.append(pickle.loads(pickle.dumps(part)))  # as a worker ships it
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(parts))
        groups = np.array_split(order, 3)  # three workers, each merging its share, then one merge of the three
        merged = ErrorStats(rtol, logits=True, exact_limit=exact_limit)
        for group in reversed(groups):
            worker = ErrorStats(rtol, logits=True, exact_limit=exact_limit)
            for i in group:
                worker.merge(parts[i])
            merged.merge(worker)
        assert _summary(merged, atol) == _summary(one, atol)
    assert one.worst.image == 7 and one.exact == (exact_limit >= a.size)
    assert not one.passes(atol) and one.top1_agreement is not None


def test_exact_sums_do_not_depend_on_the_order_of_addition():
    values = [1e16, 1.0, -1e16, 3.0, 1e-3] * 7
    forward, backward = ErrorStats(0.0)._sum_abs, ErrorStats(0.0)._sum_abs
    for v in values:
        forward.add(v)
    for v in reversed(values):
        backward.add(v)
    assert forward.value == backward.value == math.fsum(values)


def test_matching_outputs_cost_no_histogram_bins_and_merge_with_those_that_have_some():
    """An output whose every |a-b| is zero allocates no bins (a verification compares hundreds of such outputs);
    merged with statistics that have bins, in either order and through pickling, it equals one stream."""
    a, b = _pair(6, shape=(16, 50), noise=1e-3)
    same = a[:8].copy()
    identical = ErrorStats(1e-5, exact_limit=10)
    identical.update(a[:8], same, start=0)
    assert identical._abs_hist.counts is None and identical._rel_hist.counts is None
    assert identical.passes(0.0) and identical.quantile(0.99) == 0.0 and identical.min_rtol(0.0) == 0.0
    b = np.concatenate([same, b[8:]])
    one = _fed(a, b, 1e-5, batch=8, exact_limit=10)
    differing = ErrorStats(1e-5, exact_limit=10)
    differing.update(a[8:], b[8:], start=8)
    for first, second in ((identical, differing), (differing, identical)):
        merged = ErrorStats(1e-5, exact_limit=10)
        for part in (first, second):
            merged.merge(pickle.loads(pickle.dumps(part)))
        assert _summary(merged, 1e-4) == _summary(one, 1e-4)
