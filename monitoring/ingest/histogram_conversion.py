"""OTLP histograms into the store's LatencyHistogram, with the error each conversion implies.

The store keeps fixed log buckets with 1 % relative error (monitoring/metrics/histogram.py).
An OTLP histogram only says how many values fell in each of its buckets, so every bucket's
count is placed at one representative point, and a quantile read afterwards is off by at
most the distance from that point to the bucket's far edge, plus the store's 1 %.

Explicit buckets
    Bucket ``i`` covers ``(bounds[i-1], bounds[i]]``, the first ``(-inf, bounds[0]]``, the last
    ``(bounds[-1], +inf)``. Each is first narrowed to ``[min, max]`` when the point carries
    them, then its count is placed at the **geometric midpoint** ``sqrt(lo * hi)``, which
    makes the worst relative error ``sqrt(hi / lo) - 1`` (the two edges are then equally far
    in relative terms). A bucket reaching down to 0 has no geometric midpoint: its count goes
    to ``hi / 2`` and its error is unbounded. The overflow bucket without a ``max`` goes to its
    lower bound (an underestimate), error unbounded. So an SDK's default explicit buckets
    (0, 5, 10, 25, 50, 75, 100, 250, 500... ms) cannot give a p95 within 1 %: a p95 inside
    (250, 500] ms is off by up to 41 %. Spans give exact durations; prefer them.

Exponential buckets
    At scale ``s`` the base is ``b = 2 ** (2 ** -s)`` and bucket ``i`` covers ``(b**i, b**(i+1)]``.
    Its count goes to the geometric midpoint ``b ** (i + 1/2)``, so the worst error is
    ``sqrt(b) - 1`` before the store's 1 %: 4.4 % at scale 3, 1.1 % at scale 5, 0.27 % at
    scale 7, 0.14 % at scale 8 (SDKs start at scale 20 and lower it only to fit their 160
    buckets). The zero bucket and negative buckets (durations cannot be negative: clock
    skew) count as 0.

Values are converted to seconds by the caller's unit factor. The sum, and min/max when
the caller says they are exact for this interval, are kept exactly; otherwise min and max
are the lowest and highest representatives, clamped into the point's [min, max].
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitoring.metrics.histogram import (
    FORMAT_VERSION,
    MIN_TRACKED_VALUE,
    RELATIVE_ACCURACY,
    LatencyHistogram,
    bucket_index,
)

MIN_SCALE = -10
MAX_SCALE = 20
# Beyond 2**13 s (2.3 h) everything lands in the store's top bucket (1 h) anyway; this keeps
# 2 ** exponent finite for any offset a sender may send.
_MAX_EXPONENT = 13.0
_MIN_EXPONENT = -30.0


@dataclass(frozen=True)
class ConvertedHistogram:
    histogram: LatencyHistogram
    max_relative_error: float  # of any quantile read from ``histogram``, store error included


def _with_store_error(conversion_error: float) -> float:
    return (1.0 + conversion_error) * (1.0 + RELATIVE_ACCURACY) - 1.0


def _build(
    points: dict[float, int],
    zero: int,
    total_sum: float | None,
    minimum: float | None,
    maximum: float | None,
    exact_extremes: bool,
) -> LatencyHistogram:
    """A LatencyHistogram holding ``count`` values at each representative ``point`` (seconds)."""
    buckets: dict[int, int] = {}
    for value, count in points.items():
        if count <= 0:
            continue
        if value <= MIN_TRACKED_VALUE:
            zero += count
            continue
        index = bucket_index(value)
        buckets[index] = buckets.get(index, 0) + count
    count = zero + sum(buckets.values())
    occupied = [value for value, n in points.items() if n > 0 and value > MIN_TRACKED_VALUE]
    lowest = 0.0 if zero or not occupied else min(occupied)
    highest = max(occupied) if occupied else 0.0
    low_bound = max(minimum, 0.0) if minimum is not None and math.isfinite(minimum) else None
    high_bound = max(maximum, 0.0) if maximum is not None and math.isfinite(maximum) else None
    if exact_extremes and low_bound is not None and high_bound is not None and low_bound <= high_bound:
        lowest, highest = low_bound, high_bound
    else:
        if low_bound is not None:
            lowest, highest = max(lowest, low_bound), max(highest, low_bound)
        if high_bound is not None:
            lowest, highest = min(lowest, high_bound), min(highest, high_bound)
    if total_sum is None or not math.isfinite(total_sum) or total_sum < 0:
        total_sum = sum(value * n for value, n in points.items() if n > 0 and value > MIN_TRACKED_VALUE)
    return LatencyHistogram.from_dict(
        {
            "version": FORMAT_VERSION,
            "count": count,
            "sum": float(total_sum),
            "min": lowest if count else None,
            "max": highest if count else None,
            "zero": zero,
            "buckets": sorted(buckets.items()),
        }
    )


def explicit_to_histogram(
    bounds: Sequence[float],
    counts: Sequence[int],
    *,
    unit_seconds: float,
    total_sum: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exact_extremes: bool = False,
) -> ConvertedHistogram:
    """An explicit-bucket histogram (``len(counts) == len(bounds) + 1``, bounds ascending) in the store's layout.

    ``total_sum``, ``minimum`` and ``maximum`` are in the sender's unit; ``unit_seconds`` is
    how many seconds one unit is (0.001 for ms).
    """
    if len(counts) != len(bounds) + 1:
        raise ValueError("an explicit histogram needs one more bucket count than bounds")
    low_bound = minimum * unit_seconds if minimum is not None and math.isfinite(minimum) else None
    high_bound = maximum * unit_seconds if maximum is not None and math.isfinite(maximum) else None
    edges = [bound * unit_seconds for bound in bounds]
    points: dict[float, int] = {}
    zero = 0
    worst = 0.0
    for i, count in enumerate(counts):
        if count <= 0:
            continue
        lo = edges[i - 1] if i > 0 else -math.inf
        hi = edges[i] if i < len(edges) else math.inf
        if low_bound is not None:
            lo = max(lo, low_bound) if lo < low_bound <= hi else lo
        if high_bound is not None:
            hi = min(hi, high_bound) if lo <= high_bound < hi else hi
        if hi <= MIN_TRACKED_VALUE:
            zero += count
            continue
        if hi == math.inf and lo == -math.inf:
            # No bounds at all (a histogram of one bucket): only the mean is known.
            mean = total_sum * unit_seconds / count if total_sum is not None and len(counts) == 1 else 0.0
            value, error = max(mean, 0.0), math.inf
        elif hi == math.inf:
            value, error = max(lo, 0.0), math.inf  # overflow bucket, max unknown: its lower bound
        elif lo <= 0.0:
            value, error = hi / 2.0, math.inf
        else:
            value = math.sqrt(lo * hi)
            error = math.sqrt(hi / lo) - 1.0
        points[value] = points.get(value, 0) + count
        worst = max(worst, error)
    histogram = _build(
        points,
        zero,
        total_sum * unit_seconds if total_sum is not None else None,
        low_bound,
        high_bound,
        exact_extremes,
    )
    return ConvertedHistogram(histogram, _with_store_error(worst))


def exponential_to_histogram(
    scale: int,
    zero_count: int,
    offset: int,
    counts: Sequence[int],
    *,
    unit_seconds: float,
    negative_count: int = 0,
    total_sum: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exact_extremes: bool = False,
) -> ConvertedHistogram:
    """An exponential histogram's positive buckets (``counts[k]`` is bucket ``offset + k``) in the store's layout."""
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"exponential histogram scale {scale} is outside {MIN_SCALE}..{MAX_SCALE}")
    step = 2.0 ** -scale  # log2 of the base
    log2_unit = math.log2(unit_seconds)
    points: dict[float, int] = {}
    zero = zero_count + negative_count
    for k, count in enumerate(counts):
        if count <= 0:
            continue
        exponent = (offset + k + 0.5) * step + log2_unit
        if exponent < _MIN_EXPONENT:
            zero += count
            continue
        value = 2.0 ** min(exponent, _MAX_EXPONENT)
        points[value] = points.get(value, 0) + count
    error = 2.0 ** (step / 2.0) - 1.0 if points else 0.0
    histogram = _build(
        points,
        zero,
        total_sum * unit_seconds if total_sum is not None else None,
        minimum * unit_seconds if minimum is not None and math.isfinite(minimum) else None,
        maximum * unit_seconds if maximum is not None and math.isfinite(maximum) else None,
        exact_extremes,
    )
    return ConvertedHistogram(histogram, _with_store_error(error))
