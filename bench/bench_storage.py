"""Storage of request metrics over a month (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_storage.py [--days 30 --routes 20 --rate 1000]

30 simulated days of traffic over 20 routes at 1,000 requests per minute on each route (a
busy sale day, all month), through the real write path on an injected clock (ManualClock):
``RequestRecorder`` -> ``flush_recorder`` -> ``RequestRollups.flush`` (minute rows, hour rows,
running totals) into a SQLite store, and the leader's ``metrics_downsample`` job
(``RequestRollups.downsample``: minute rows go after 48 h, everything after
METRICS_RETENTION_DAYS) every simulated hour. Then: the store's size, and p50/p95/p99 from the
store against exact values on the final day.

Why the requests are synthesised per route-minute: 30 x 1,440 x 20 x 1,000 = 864 million
requests cannot be recorded one by one in a benchmark that runs in minutes. What the store
sees is not requests but one aggregate (histogram + status counts) per route per minute,
so for each route a pool of minute aggregates is built from real samples (1,000 each, from
that route's latency distribution and status mix), and every simulated minute hands one of
them, picked at random, to the recorder (``restore``, the same merge a failed flush uses)
and flushes it through the real path. Keeping the pool's raw samples gives the exact
percentiles of what was stored. One flush per simulated minute instead of one per 5 s: a
later flush in the same minute merges into the same row, so the rows, and the store's size,
are the same; only write amplification differs.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitoring.clock import ManualClock  # noqa: E402
from monitoring.metrics.categories import TimeWindow  # noqa: E402
from monitoring.metrics.histogram import RELATIVE_ACCURACY, nearest_rank  # noqa: E402
from monitoring.metrics.recorder import RequestAggregate, RequestRecorder, RollupKey, status_class  # noqa: E402
from monitoring.metrics.rollups import HOUR, MINUTE, RequestRollups, flush_recorder  # noqa: E402
from monitoring.store.database import Store  # noqa: E402

DAY = 86400
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
QUANTILES = (0.5, 0.95, 0.99)


class RouteTraffic:
    """One route: a latency distribution, a status mix, and a pool of minute aggregates drawn from them."""

    def __init__(self, name: str, rng: random.Random, rate: int, pool_size: int) -> None:
        self.name = name
        median = rng.uniform(0.012, 0.250)  # 12 ms .. 250 ms
        sigma = rng.uniform(0.35, 0.9)
        self.pool_samples: list[list[float]] = []
        self.pool: list[RequestAggregate] = []
        for _ in range(pool_size):
            samples, aggregate = [], RequestAggregate()
            for _ in range(rate):
                roll = rng.random()
                status = 200 if roll < 0.965 else 302 if roll < 0.975 else 404 if roll < 0.995 else 503
                value = rng.lognormvariate(math.log(median), sigma) * (3.0 if status == 503 else 1.0)
                samples.append(value)
                aggregate.record(status_class(status), value)
            self.pool_samples.append(samples)
            self.pool.append(aggregate)


def weighted_quantiles(groups: list[tuple[list[float], int]], qs: tuple[float, ...]) -> list[float]:
    """Exact nearest-rank quantiles of the multiset where each group's samples occur ``weight`` times."""
    pairs = sorted((value, weight) for samples, weight in groups if weight for value in samples)
    total = sum(weight for _, weight in pairs)
    out = []
    for q in qs:
        rank, seen = nearest_rank(q, total), 0
        for value, weight in pairs:
            seen += weight
            if seen >= rank:
                out.append(value)
                break
    return out


def file_bytes(database: Path) -> int:
    return sum(os.path.getsize(p) for p in (database, Path(f"{database}-wal")) if p.exists())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="requests per minute on each route")
    parser.add_argument("--pool", type=int, default=40, help="distinct minute aggregates per route")
    parser.add_argument("--retention-days", type=int, default=30)
    args = parser.parse_args()

    rng = random.Random(20260101)
    started = time.perf_counter()
    traffic = [RouteTraffic(f"/api/route{i:02d}/<item_id>", rng, args.rate, args.pool) for i in range(args.routes)]
    print(f"{args.days} days x {args.routes} routes x {args.rate:,} requests/minute "
          f"= {args.days * 1440 * args.routes * args.rate:,} requests, as {args.days * 1440 * args.routes:,} "
          f"route-minute aggregates drawn from a pool of {args.pool} per route "
          f"(built in {time.perf_counter() - started:.1f} s)")

    workdir = Path(tempfile.mkdtemp(prefix="centinela-storage-"))
    database = workdir / "centinela.db"
    clock = ManualClock(START)
    store = Store(f"sqlite:///{database}", clock)
    store.migrate()
    rollups = RequestRollups(store, clock, retention_seconds=args.retention_days * DAY)
    recorder = RequestRecorder(clock)

    minutes = args.days * 1440
    final_day_from = minutes - 1440
    chosen: list[Counter[int]] = [Counter() for _ in traffic]
    flush_seconds = downsample_seconds = 0.0
    peak_wal = 0
    started = time.perf_counter()
    for minute in range(minutes):
        minute_start = START + minute * MINUTE
        clock.set(minute_start + MINUTE - 1)  # the last flush of the minute
        entries = {}
        for index, route in enumerate(traffic):
            pick = rng.randrange(args.pool)
            if minute >= final_day_from:
                chosen[index][pick] += 1
            entries[RollupKey(minute_start, "GET", route.name, False)] = route.pool[pick].copy()
        recorder.restore(entries)
        t0 = time.perf_counter()
        flush_recorder(recorder, rollups)
        flush_seconds += time.perf_counter() - t0
        if (minute + 1) % 60 == 0:
            clock.set(minute_start + MINUTE)
            t0 = time.perf_counter()
            rollups.downsample()
            downsample_seconds += time.perf_counter() - t0
        if (minute + 1) % 1440 == 0:
            day = (minute + 1) // 1440
            wal = Path(f"{database}-wal")
            peak_wal = max(peak_wal, wal.stat().st_size if wal.exists() else 0)
            if day % 5 == 0 or day == args.days:
                counts = rollups.row_counts()
                print(f"  day {day:2d}: {counts.get(MINUTE, 0):6,} minute rows, {counts.get(HOUR, 0):6,} hour rows, "
                      f"file {file_bytes(database) / 1e6:6.1f} MB  ({time.perf_counter() - started:.0f} s)")
    end = clock.now()
    store.dispose()

    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
        blob_bytes, rows = conn.execute("SELECT SUM(LENGTH(histogram)), COUNT(*) FROM request_rollups").fetchone()
        sizes = dict(conn.execute("SELECT resolution, AVG(LENGTH(histogram)) FROM request_rollups GROUP BY resolution"))
    size = file_bytes(database)
    counts = RequestRollups(Store(f"sqlite:///{database}", clock), clock).row_counts()
    print(f"\nwrite path: {flush_seconds:.0f} s in {minutes:,} flushes ({flush_seconds / minutes * 1000:.1f} ms each), "
          f"downsample and purge {downsample_seconds:.0f} s in {minutes // 60:,} runs")
    print(f"store: {size / 1e6:.1f} MB on disk (SQLite file after a WAL checkpoint; {free / 1e6:.1f} MB of it "
          f"free pages that new rows reuse); while running, the WAL file beside it reached "
          f"{peak_wal / 1e6:.1f} MB; target < 25 MB")
    print(f"rows: {counts.get(MINUTE, 0):,} minute rows (48 h), {counts.get(HOUR, 0):,} hour rows; histogram "
          f"{sizes.get(MINUTE, 0):.0f} bytes per minute row, {sizes.get(HOUR, 0):.0f} per hour row on average; "
          f"{size / rows:.0f} bytes per row in all")

    store = Store(f"sqlite:///{database}", clock)
    rollups = RequestRollups(store, clock)
    final_day = TimeWindow(START + final_day_from * MINUTE, end + 1, "final day")
    figures = rollups.figures(final_day)
    worst = {q: 0.0 for q in QUANTILES}
    for index, route in enumerate(traffic):
        stored = next(r for r in figures.routes if r.route == route.name)
        exact = weighted_quantiles([(route.pool_samples[k], n) for k, n in chosen[index].items()], QUANTILES)
        for q, estimate, truth in zip(QUANTILES, stored.histogram.quantiles(QUANTILES), exact, strict=False):
            worst[q] = max(worst[q], abs(estimate - truth) / truth)
    groups = [(traffic[i].pool_samples[k], n) for i in range(len(traffic)) for k, n in chosen[i].items()]
    exact_all = weighted_quantiles(groups, QUANTILES)
    estimate_all = figures.histogram.quantiles(QUANTILES)
    print(f"final day from the store: {figures.count:,} requests (expected {1440 * args.rate * args.routes:,}), "
          f"{figures.errors:,} 5xx")
    for q, estimate, truth in zip(QUANTILES, estimate_all, exact_all, strict=False):
        print(f"  p{q * 100:g} overall: {estimate * 1000:8.3f} ms vs exact {truth * 1000:8.3f} ms: "
              f"error {abs(estimate - truth) / truth * 100:.3f} %; worst of the {len(traffic)} routes "
              f"{worst[q] * 100:.3f} %  (bound {RELATIVE_ACCURACY * 100:.0f} %)")
    if args.days > 10:
        older = TimeWindow(START + (args.days - 10) * DAY, START + (args.days - 9) * DAY, "a day in the hour tier")
        t0 = time.perf_counter()
        old = rollups.figures(older)
        print(f"a day 10 days back (hour rows): {old.count:,} requests, "
              f"p95 {old.histogram.quantile(0.95) * 1000:.3f} ms; read in {(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    month = rollups.figures(TimeWindow(end - args.retention_days * DAY, end, "30d"))
    print(f"window=30d query (hour rows, minute rows at the edges): {month.count:,} requests, "
          f"p95 {month.histogram.quantile(0.95) * 1000:.3f} ms, in {(time.perf_counter() - t0):.1f} s")
    store.dispose()


if __name__ == "__main__":
    main()
