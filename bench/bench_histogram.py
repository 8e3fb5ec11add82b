"""Micro-benchmarks for monitoring.metrics.histogram (prints figures, no pass/fail).

Run from the repo root:  PYTHONPATH=. python bench/bench_histogram.py

Figures:
* ns per ``record()`` over 1M calls (hot path, once per HTTP request),
* ns per ``merge()`` of two 300-bucket histograms (rollup merge cost),
* encoded bytes per route-minute of 1,000 requests (SQL BLOB size),
* relative error of p50/p95/p99 on 1M lognormal samples (accuracy claim).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitoring.metrics.histogram import (  # noqa: E402
    RELATIVE_ACCURACY,
    LatencyHistogram,
    bucket_value,
    nearest_rank,
)

N_RECORD = 1_000_000
REPEATS = 5


def _lognormal(rng: random.Random, n: int, median: float = 0.05, sigma: float = 1.0) -> list[float]:
    mu = math.log(median)
    return [rng.lognormvariate(mu, sigma) for _ in range(n)]


def bench_record(samples: list[float]) -> None:
    best = math.inf
    for _ in range(REPEATS):
        h = LatencyHistogram()
        rec = h.record
        t0 = time.perf_counter_ns()
        for x in samples:
            rec(x)
        best = min(best, time.perf_counter_ns() - t0)

    # Baseline: the same loop calling a no-op method, i.e. pure call overhead.
    class _Noop:
        def record(self, seconds: float) -> None:
            pass

    noop = _Noop().record
    base = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        for x in samples:
            noop(x)
        base = min(base, time.perf_counter_ns() - t0)

    n = len(samples)
    print(f"record():   {best / n:7.1f} ns/call  (best of {REPEATS} x {n:,} calls; "
          f"no-op method call loop = {base / n:.1f} ns, so ~{(best - base) / n:.1f} ns of work)")


def _histogram_with_buckets(first_index: int, n_buckets: int, rng: random.Random) -> LatencyHistogram:
    h = LatencyHistogram()
    for i in range(first_index, first_index + n_buckets):
        for _ in range(rng.randint(1, 20)):
            h.record(bucket_value(i))
    assert len(h.buckets()) == n_buckets
    return h


def bench_merge(rng: random.Random) -> None:
    # Two 300-bucket histograms overlapping on half their buckets (two workers,
    # same route, same minute).
    a = _histogram_with_buckets(-250, 300, rng)
    b = _histogram_with_buckets(-100, 300, rng)
    n = 2_000

    # Fresh merge (new keys inserted), minus the copy() needed to get a fresh target.
    best_copy = best_fresh = math.inf
    for _ in range(REPEATS):
        targets = [a.copy() for _ in range(n)]
        t0 = time.perf_counter_ns()
        for _t in range(n):
            a.copy()
        best_copy = min(best_copy, time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        for t in targets:
            t.merge(b)
        best_fresh = min(best_fresh, time.perf_counter_ns() - t0)

    # Steady state (target already has all keys, e.g. accumulating an hour).
    acc = a.copy()
    acc.merge(b)
    best_steady = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter_ns()
        for _t in range(n):
            acc.merge(b)
        best_steady = min(best_steady, time.perf_counter_ns() - t0)

    print(f"merge():    {best_fresh / n:7.0f} ns/merge of two 300-bucket histograms "
          f"(150 new keys); {best_steady / n:.0f} ns when all keys exist; "
          f"copy() = {best_copy / n:.0f} ns")


def bench_encoding(rng: random.Random) -> None:
    scenarios = {
        "lognormal median 50ms sigma 0.5": lambda: _lognormal(rng, 1000, 0.05, 0.5),
        "lognormal median 50ms sigma 1.0": lambda: _lognormal(rng, 1000, 0.05, 1.0),
        "lognormal median 50ms sigma 1.5": lambda: _lognormal(rng, 1000, 0.05, 1.5),
        "bimodal 3ms / 400ms": lambda: [
            rng.gauss(0.003, 0.0005) if rng.random() < 0.8 else rng.gauss(0.4, 0.05)
            for _ in range(1000)
        ],
    }
    for name, gen in scenarios.items():
        h = LatencyHistogram()
        for x in gen():
            h.record(x)
        blob = h.to_bytes()
        t0 = time.perf_counter_ns()
        for _ in range(200):
            h.to_bytes()
        t_enc = (time.perf_counter_ns() - t0) / 200
        t0 = time.perf_counter_ns()
        for _ in range(200):
            LatencyHistogram.from_bytes(blob)
        t_dec = (time.perf_counter_ns() - t0) / 200
        print(f"encoding:   {len(blob):5d} bytes for 1,000 requests, {h.bucket_count:3d} buckets "
              f"[{name}]; to_bytes {t_enc / 1000:.0f} us, from_bytes {t_dec / 1000:.0f} us")
    print(f"encoding:   {len(LatencyHistogram().to_bytes()):5d} bytes for an empty histogram")


def bench_accuracy(samples: list[float]) -> None:
    h = LatencyHistogram()
    for x in samples:
        h.record(x)
    s = sorted(samples)
    n = len(s)
    parts = []
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999)):
        true = s[nearest_rank(q, n) - 1]
        est = h.quantile(q)
        parts.append(f"{label} {abs(est - true) / true * 100:.4f}%")
    print(f"accuracy:   relative error on {n:,} lognormal samples: " + ", ".join(parts)
          + f"  (bound {RELATIVE_ACCURACY * 100:.0f}%; {h.bucket_count} buckets, "
          f"{len(h.to_bytes())} bytes)")


def main() -> None:
    rng = random.Random(20240601)
    print(f"Python {sys.version.split()[0]}  ({sys.implementation.name})")
    samples = _lognormal(rng, N_RECORD)
    bench_record(samples)
    bench_merge(rng)
    bench_encoding(rng)
    bench_accuracy(samples)


if __name__ == "__main__":
    main()
