"""Tests for monitoring.metrics.histogram.LatencyHistogram.

Quantile estimates are checked against exact nearest-rank values computed
independently from the same samples (rank via exact decimal arithmetic).
"""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.metrics import histogram as hm
from monitoring.metrics.histogram import (
    GAMMA,
    MAX_TRACKED_VALUE,
    MIN_TRACKED_VALUE,
    PROMETHEUS_BUCKETS,
    RELATIVE_ACCURACY,
    LatencyHistogram,
    bucket_index,
    bucket_value,
    nearest_rank,
)

# Relative-error budget: alpha plus a few ulps for float rounding at bucket edges.
REL_TOL = RELATIVE_ACCURACY + 1e-12
QS = (0.5, 0.95, 0.99)


# -- helpers ------------------------------------------------------------------


def exact_rank(q: float, n: int) -> int:
    """ceil(q*n) evaluated on the decimal value of q, never below 1."""
    return max(1, math.ceil(Fraction(str(q)) * n))


def normalized(x: float) -> float:
    """What the histogram should treat a raw duration as (negatives/NaN -> 0)."""
    return x if x > 0 else 0.0


def exact_quantile(samples: list[float], q: float) -> float:
    s = sorted(normalized(x) for x in samples)
    return s[exact_rank(q, len(s)) - 1]


def build(samples) -> LatencyHistogram:
    h = LatencyHistogram()
    for x in samples:
        h.record(x)
    return h


def rel_err(est: float, true: float) -> float:
    return abs(est - true) / true


def assert_quantile_ok(h: LatencyHistogram, samples: list[float], q: float) -> None:
    est = h.quantile(q)
    true = exact_quantile(samples, q)
    assert est is not None
    if true <= MIN_TRACKED_VALUE:
        # Zero bucket: absolute error of at most the zero-bucket width.
        assert abs(est - true) <= MIN_TRACKED_VALUE, (q, est, true)
    else:
        assert rel_err(est, true) <= REL_TOL, (q, est, true, rel_err(est, true))


# -- distributions --------------------------------------------------------------


def _uniform(r: random.Random) -> list[float]:
    return [r.uniform(0.001, 2.0) for _ in range(5000)]


def _lognormal(r: random.Random) -> list[float]:
    return [r.lognormvariate(math.log(0.05), 1.0) for _ in range(5000)]


def _exponential(r: random.Random) -> list[float]:
    return [r.expovariate(1 / 0.08) for _ in range(5000)]


def _bimodal(r: random.Random) -> list[float]:
    # Cache hits around 3 ms, misses around 400 ms.
    return [
        r.gauss(0.003, 0.0005) if r.random() < 0.8 else r.gauss(0.4, 0.05)
        for _ in range(5000)
    ]


def _constant(r: random.Random) -> list[float]:
    return [0.123] * 1000


def _single(r: random.Random) -> list[float]:
    return [0.0421]


def _heavy_tail(r: random.Random) -> list[float]:
    xs = [r.lognormvariate(math.log(0.03), 0.5) for _ in range(995)]
    xs += [30.0 + r.random() for _ in range(5)]  # a few stuck requests
    r.shuffle(xs)
    return xs


def _pareto(r: random.Random) -> list[float]:
    return [0.01 * r.paretovariate(1.2) for _ in range(5000)]


DISTRIBUTIONS = {
    "uniform": _uniform,
    "lognormal": _lognormal,
    "exponential": _exponential,
    "bimodal": _bimodal,
    "constant": _constant,
    "single": _single,
    "heavy_tail": _heavy_tail,
    "pareto": _pareto,
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_quantiles_within_relative_accuracy(name: str) -> None:
    samples = DISTRIBUTIONS[name](random.Random(hash(name) & 0xFFFF))
    h = build(samples)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        assert_quantile_ok(h, samples, q)
    assert h.quantiles(QS) == [h.quantile(q) for q in QS]
    # The extreme ranks are exact.
    assert h.quantile(0.0) == min(samples)
    assert h.quantile(1.0) == max(samples)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_exact_summary_stats(name: str) -> None:
    samples = DISTRIBUTIONS[name](random.Random(7))
    h = build(samples)
    assert h.count == len(samples)
    assert h.min == min(samples)
    assert h.max == max(samples)
    assert h.sum == pytest.approx(math.fsum(samples), rel=1e-12)


def test_heavy_tail_p99_sees_outliers_but_p95_does_not() -> None:
    samples = _heavy_tail(random.Random(3))
    h = build(samples)
    # 5 of 1000 are ~30 s: rank 990 (p99) is still a normal request, rank 996+ is not.
    assert h.quantile(0.99) < 1.0
    assert h.quantile(0.999) == pytest.approx(exact_quantile(samples, 0.999), rel=REL_TOL)
    assert h.quantile(0.999) >= 30.0 * (1 - RELATIVE_ACCURACY)
    assert h.quantile(1.0) == max(samples)  # clamped to the exact max


def test_constant_samples_return_exact_value() -> None:
    # Clamping into [min, max] makes a constant distribution exact.
    h = build([0.123] * 50)
    assert h.quantiles((0.0, 0.5, 0.99, 1.0)) == [0.123] * 4


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=MIN_TRACKED_VALUE * 1.0000001, max_value=MAX_TRACKED_VALUE),
        min_size=1,
        max_size=200,
    ),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_quantile_property_tracked_range(samples: list[float], q: float) -> None:
    h = build(samples)
    est = h.quantile(q)
    true = sorted(samples)[nearest_rank(q, len(samples)) - 1]
    assert rel_err(est, true) <= REL_TOL
    assert h.min <= est <= h.max


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-5.0, max_value=0.0),
            st.floats(min_value=0.0, max_value=2e-6),
            st.floats(min_value=1e-6, max_value=100.0),
        ),
        min_size=1,
        max_size=100,
    ),
    st.sampled_from([0.0, 0.1, 0.5, 0.95, 0.99, 1.0]),
)
def test_quantile_property_with_zero_bucket(samples: list[float], q: float) -> None:
    assert_quantile_ok(build(samples), samples, q)


def test_bucket_representative_within_alpha() -> None:
    x = MIN_TRACKED_VALUE * 1.0000001
    while x <= MAX_TRACKED_VALUE:
        assert rel_err(bucket_value(bucket_index(x)), x) <= REL_TOL, x
        # Bucket i covers (gamma**(i-1), gamma**i].
        i = bucket_index(x)
        assert GAMMA ** (i - 1) * (1 - 1e-12) <= x <= GAMMA**i * (1 + 1e-12)
        x *= 1.0037


def test_gamma_and_constants() -> None:
    assert RELATIVE_ACCURACY == 0.01
    assert GAMMA == pytest.approx(1.01 / 0.99, rel=1e-15)
    assert isinstance(PROMETHEUS_BUCKETS, tuple)
    assert list(PROMETHEUS_BUCKETS) == sorted(set(PROMETHEUS_BUCKETS))
    assert all(b > MIN_TRACKED_VALUE for b in PROMETHEUS_BUCKETS)
    assert math.inf not in PROMETHEUS_BUCKETS  # +Inf is implied


def test_record_thresholds_match_module_constants() -> None:
    # record() inlines MIN/MAX_TRACKED_VALUE for speed; make sure they agree.
    at_min = build([MIN_TRACKED_VALUE])
    assert at_min.zero_count == 1 and at_min.buckets() == {}
    above_min = build([math.nextafter(MIN_TRACKED_VALUE, 1.0)])
    assert above_min.zero_count == 0
    assert above_min.buckets() == {hm.MIN_INDEX: 1}
    at_max = build([MAX_TRACKED_VALUE])
    assert at_max.buckets() == {hm.TOP_INDEX: 1}
    above_max = build([math.nextafter(MAX_TRACKED_VALUE, math.inf), 1e9])
    assert above_max.buckets() == {hm.TOP_INDEX: 2}
    assert hm.TOP_INDEX == bucket_index(MAX_TRACKED_VALUE)
    assert bucket_index(1e9) == hm.TOP_INDEX
    below_top = math.nextafter(GAMMA ** (hm.TOP_INDEX - 1), 0.0)
    assert build([below_top]).buckets() == {hm.TOP_INDEX - 1: 1}


def test_huge_values_clamped_but_exact_stats_kept() -> None:
    h = build([0.1, 7200.0, 10_000.0])
    assert h.max == 10_000.0
    assert h.sum == pytest.approx(17_200.1)
    assert h.buckets()[hm.TOP_INDEX] == 2
    # rank 2 is 7200 s; the top bucket saturates near 1 h but is clamped to >= min.
    est = h.quantile(0.5)
    assert MAX_TRACKED_VALUE * (1 - RELATIVE_ACCURACY) <= est <= MAX_TRACKED_VALUE * GAMMA
    assert h.quantile(1.0) == 10_000.0


@pytest.mark.parametrize(
    "q, n, rank",
    [(0.07, 100, 7), (0.5, 1, 1), (0.0, 10, 1), (1.0, 10, 10), (0.95, 20, 19),
     (0.99, 1000, 990), (0.999, 1000, 999), (0.5, 3, 2), (0.29, 100, 29), (0.57, 100, 57)],
)
def test_nearest_rank(q: float, n: int, rank: int) -> None:
    assert nearest_rank(q, n) == rank


@given(st.integers(min_value=1, max_value=10**7), st.integers(min_value=0, max_value=1000))
def test_nearest_rank_matches_decimal_definition(n: int, permille: int) -> None:
    q = permille / 1000
    assert nearest_rank(q, n) == exact_rank(q, n)


def test_quantile_rank_is_lower_nearest_rank() -> None:
    # Values far apart (> 2 buckets) so the estimate identifies the sample.
    samples = [0.001 * 1.1**k for k in range(20)]
    h = build(reversed(samples))
    for k in range(1, 21):
        q = k / 20
        assert h.quantile(q) == pytest.approx(samples[k - 1], rel=REL_TOL)
        # Just above k/20 must move to the next sample.
        if k < 20:
            assert h.quantile(q + 0.001) == pytest.approx(samples[k], rel=REL_TOL)


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, math.inf])
def test_quantile_rejects_out_of_range(q: float) -> None:
    h = build([0.1])
    with pytest.raises(ValueError):
        h.quantile(q)


# -- empty, zero and negative -----------------------------------------------------


def test_empty_histogram() -> None:
    h = LatencyHistogram()
    assert h.count == 0 and h.sum == 0.0
    assert h.min is None and h.max is None
    assert h.quantile(0.5) is None
    assert h.quantiles(QS) == [None, None, None]
    assert h.cumulative_buckets() == [(b, 0) for b in PROMETHEUS_BUCKETS]
    assert bool(h) is True  # an empty histogram is still a histogram
    assert LatencyHistogram.from_bytes(h.to_bytes()) == h
    assert LatencyHistogram.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    assert h.to_dict()["min"] is None
    assert repr(h) == "LatencyHistogram(count=0)"


def test_zero_and_negative_durations() -> None:
    h = build([0.0, -0.25, -0.0, math.nan, -math.inf])
    assert h.count == 5
    assert h.zero_count == 5
    assert h.sum == 0.0
    assert h.min == 0.0 and h.max == 0.0
    assert math.copysign(1.0, h.min) == 1.0  # not -0.0
    assert h.quantiles((0.0, 0.5, 1.0)) == [0.0, 0.0, 0.0]
    assert h.cumulative_buckets((0.005, math.inf)) == [(0.005, 5), (math.inf, 5)]


def test_negative_mixed_with_positive() -> None:
    h = build([-1.0, 0.2, 0.4])
    assert h.count == 3
    assert h.min == 0.0
    assert h.sum == pytest.approx(0.6)
    assert h.quantile(0.0) == 0.0
    assert h.quantile(0.5) == pytest.approx(0.2, rel=REL_TOL)
    assert h.quantile(1.0) == 0.4


def test_sub_microsecond_values_use_zero_bucket() -> None:
    h = build([5e-7, 2e-7, 0.01])
    assert h.zero_count == 2
    assert h.min == 2e-7
    # Zero bucket reports 0, clamped up to the exact min.
    assert h.quantile(0.0) == 2e-7
    assert h.quantile(0.5) == 2e-7
    assert h.quantile(1.0) == 0.01


# -- merge --------------------------------------------------------------------------


@pytest.mark.parametrize("n_parts", [2, 3, 8, 60])
def test_merge_of_split_equals_whole(n_parts: int) -> None:
    r = random.Random(n_parts)
    samples = _lognormal(r) + _heavy_tail(r) + [0.0, -1.0, 9999.0]
    parts: list[list[float]] = [[] for _ in range(n_parts)]
    for x in samples:
        parts[r.randrange(n_parts)].append(x)
    whole = build(samples)
    merged = LatencyHistogram()
    for p in parts:
        merged.merge(build(p))
    assert merged.buckets() == whole.buckets()
    assert merged.zero_count == whole.zero_count
    assert merged.count == whole.count
    assert merged.min == whole.min and merged.max == whole.max
    assert merged.sum == pytest.approx(whole.sum, rel=1e-12)
    qs = (0.0, 0.5, 0.95, 0.99, 0.999, 1.0)
    assert merged.quantiles(qs) == whole.quantiles(qs)
    assert merged.cumulative_buckets() == whole.cumulative_buckets()
    # Same via the classmethod and via serialized rollups (minute -> hour path).
    via_blobs = LatencyHistogram.merged(
        LatencyHistogram.from_bytes(build(p).to_bytes()) for p in parts
    )
    assert via_blobs.buckets() == whole.buckets()
    assert via_blobs.quantiles(qs) == whole.quantiles(qs)


@settings(deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), max_size=60),
    st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), max_size=60),
)
def test_merge_property(a: list[float], b: list[float]) -> None:
    ha, hb = build(a), build(b)
    hb_before = hb.copy()
    ha.merge(hb)
    whole = build(a + b)
    assert hb == hb_before  # merge must not mutate its argument
    assert ha.buckets() == whole.buckets()
    assert (ha.count, ha.zero_count, ha.min, ha.max) == (
        whole.count, whole.zero_count, whole.min, whole.max,
    )
    assert ha.sum == pytest.approx(whole.sum, rel=1e-9)


def test_merge_empty_and_self() -> None:
    h = build([0.01, 0.02, 0.0])
    before = h.copy()
    h.merge(LatencyHistogram())
    assert h == before
    e = LatencyHistogram()
    e.merge(h)
    assert e == h
    h.merge(h)
    assert h.count == 6 and h.zero_count == 2
    assert h.buckets() == {i: 2 * c for i, c in before.buckets().items()}
    assert h.sum == pytest.approx(2 * before.sum)
    assert (h.min, h.max) == (before.min, before.max)


def test_merge_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        LatencyHistogram().merge({1: 2})  # type: ignore[arg-type]


def test_copy_is_independent() -> None:
    h = build([0.1, 0.2])
    c = h.copy()
    assert c == h
    c.record(5.0)
    assert h.count == 2 and h.max == 0.2
    assert c != h
    h.record(0.3)
    assert c.count == 3 and 0.3 not in (c.min, c.max)


# -- serialization ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=300))
def test_bytes_round_trip(samples: list[float]) -> None:
    h = build(samples)
    blob = h.to_bytes()
    assert isinstance(blob, bytes)
    back = LatencyHistogram.from_bytes(blob)
    assert back == h
    assert back.to_bytes() == blob
    assert back.quantiles(QS) == h.quantiles(QS)
    assert LatencyHistogram.from_bytes(memoryview(blob)) == h


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=-1.0, max_value=1e5), max_size=100))
def test_dict_round_trip_through_json(samples: list[float]) -> None:
    h = build(samples)
    back = LatencyHistogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back == h


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1.0, max_value=1e4), min_size=0, max_size=80))
def test_every_truncation_and_extension_is_rejected(samples: list[float]) -> None:
    blob = build(samples).to_bytes()
    for cut in range(len(blob)):
        with pytest.raises(ValueError):
            LatencyHistogram.from_bytes(blob[:cut])
    with pytest.raises(ValueError):
        LatencyHistogram.from_bytes(blob + b"\x00")


def test_from_bytes_rejects_bad_version_and_inconsistent_data() -> None:
    blob = bytearray(build([0.01, 0.02, 0.02]).to_bytes())
    bad_version = bytes([hm.FORMAT_VERSION + 1]) + bytes(blob[1:])
    with pytest.raises(ValueError, match="version"):
        LatencyHistogram.from_bytes(bad_version)
    bad_count = bytearray(blob)
    bad_count[1] += 1  # count varint (3 < 128: single byte)
    with pytest.raises(ValueError, match="add up"):
        LatencyHistogram.from_bytes(bytes(bad_count))
    # A bucket index outside the shared layout (first index is zigzag encoded).
    out = bytearray([hm.FORMAT_VERSION, 1]) + bytearray(8 * 3) + bytearray([0, 1])
    hm._put_varint(out, hm._zigzag(hm.TOP_INDEX + 1))
    out.append(1)
    with pytest.raises(ValueError, match="layout"):
        LatencyHistogram.from_bytes(bytes(out))


def test_from_dict_rejects_malformed() -> None:
    good = build([0.01, 0.5]).to_dict()
    for mutate in (
        lambda d: d.pop("buckets"),
        lambda d: d.update(version=99),
        lambda d: d.update(count=d["count"] + 1),
        lambda d: d.update(buckets=[[0, 0]] + d["buckets"]),
        lambda d: d.update(buckets=[["x", 1]]),
        lambda d: d.update(min=2.0, max=1.0),
    ):
        d = json.loads(json.dumps(good))
        mutate(d)
        with pytest.raises(ValueError):
            LatencyHistogram.from_dict(d)


def test_realistic_minute_encodes_under_1kb() -> None:
    r = random.Random(42)
    samples = [r.lognormvariate(math.log(0.05), 1.0) for _ in range(1000)]
    h = build(samples)
    blob = h.to_bytes()
    assert h.bucket_count > 150  # a realistic spread, not a degenerate one
    assert len(blob) < 1024
    # About 2 bytes per bucket plus a ~30 byte header.
    assert len(blob) <= 2 * h.bucket_count + 40


def test_varint_and_zigzag_helpers() -> None:
    for n in (0, 1, 127, 128, 300, 2**32, 2**63 - 1):
        out = bytearray()
        hm._put_varint(out, n)
        assert hm._get_varint(bytes(out), 0) == (n, len(out))
    for n in (0, 1, -1, 2, -2, 690, -690, 10**6, -(10**6)):
        assert hm._zigzag(n) >= 0
        assert hm._unzigzag(hm._zigzag(n)) == n
    assert [hm._zigzag(n) for n in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]


# -- Prometheus cumulative buckets ------------------------------------------------------


def exact_le(samples: list[float], le: float) -> int:
    return sum(1 for x in samples if normalized(x) <= le)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_cumulative_buckets_bracket_exact_counts(name: str) -> None:
    samples = DISTRIBUTIONS[name](random.Random(11))
    h = build(samples)
    cum = h.cumulative_buckets(PROMETHEUS_BUCKETS)
    assert [le for le, _ in cum] == list(PROMETHEUS_BUCKETS)
    counts = [c for _, c in cum]
    assert counts == sorted(counts)  # cumulative => non-decreasing
    assert counts[-1] <= h.count
    for le, c in cum:
        # Never over-counts; under-counts only observations in (le/gamma, le].
        assert exact_le(samples, le / GAMMA * (1 - 1e-9)) <= c <= exact_le(samples, le * (1 + 1e-9))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1.0, max_value=20.0), max_size=200),
    st.lists(st.floats(min_value=1e-5, max_value=100.0), min_size=1, max_size=10, unique=True),
)
def test_cumulative_buckets_property(samples: list[float], bounds: list[float]) -> None:
    bounds = sorted(bounds) + [math.inf]
    h = build(samples)
    cum = h.cumulative_buckets(bounds)
    assert cum[-1] == (math.inf, h.count)
    for le, c in cum[:-1]:
        assert exact_le(samples, le / GAMMA * (1 - 1e-9)) <= c <= exact_le(samples, le * (1 + 1e-9))


def test_cumulative_buckets_exact_away_from_bounds() -> None:
    # Samples at the geometric midpoints between Prometheus bounds: no sample
    # falls in a straddling bucket, so counts are exact.
    mids = [math.sqrt(a * b) for a, b in zip(PROMETHEUS_BUCKETS, PROMETHEUS_BUCKETS[1:], strict=False)]
    samples = [0.001] * 3 + [m for k, m in enumerate(mids) for _ in range(k + 1)] + [50.0] * 2
    h = build(samples)
    assert h.cumulative_buckets() == [(le, exact_le(samples, le)) for le in PROMETHEUS_BUCKETS]


def test_cumulative_buckets_clamped_and_zero_bucket() -> None:
    h = build([0.0, -3.0, 4000.0, 3599.0])
    bounds = (1e-7, 0.005, 10.0, 3600.0, math.inf)
    # Zero-bucket values count from MIN_TRACKED_VALUE up; the top bucket only at +Inf.
    assert h.cumulative_buckets(bounds) == [
        (1e-7, 0), (0.005, 2), (10.0, 2), (3600.0, 2), (math.inf, 4),
    ]
    # Clamped values may be arbitrarily large: never count them under a finite
    # bound, even one above the top bucket's nominal edge (no over-count of 7200).
    big = build([4000.0, 7200.0])
    assert big.cumulative_buckets((5000.0, 8000.0, math.inf)) == [
        (5000.0, 0), (8000.0, 0), (math.inf, 2),
    ]


def test_cumulative_buckets_rejects_unsorted_bounds() -> None:
    with pytest.raises(ValueError):
        build([0.1]).cumulative_buckets((0.5, 0.1))
    with pytest.raises(ValueError):
        build([0.1]).cumulative_buckets((0.1, math.nan))


def test_equality_and_repr() -> None:
    a = build([0.01, 0.2])
    b = build([0.2, 0.01])
    assert a == b
    assert a != build([0.01, 0.21 * GAMMA])
    assert (a == object()) is False
    with pytest.raises(TypeError):
        hash(a)
    assert "count=2" in repr(a) and "p99=" in repr(a)
