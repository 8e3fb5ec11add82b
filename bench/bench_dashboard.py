"""What one dashboard refresh costs (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_dashboard.py [--routes 20 --hours 24]

Seeds a SQLite store through the real write paths (the request recorder and its flush, one
flush per minute of a driven clock; business events through the events recorder) with
``--routes`` routes, 3 status classes and about 30 requests per route-minute over ``--hours``,
then times ``build_dashboard`` for the full view (every section, both series) and the public
view, cold (first refresh of a process) and warm (the next refreshes: series buckets whose
request count in the store has not changed are reused, so a refresh decodes only the newest).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datetime import UTC

from app import create_app  # noqa: E402
from monitoring.clock import ManualClock  # noqa: E402
from monitoring.dashboard.data import FULL, PUBLIC, build_dashboard  # noqa: E402
from monitoring.dashboard.series import BucketMemo  # noqa: E402
from monitoring.metrics.recorder import RequestRecorder  # noqa: E402
from monitoring.metrics.rollups import RequestRollups, flush_recorder  # noqa: E402
from monitoring.settings import Settings  # noqa: E402

NOW = 1_767_225_600.0 + 86400 * 2 + 0.5  # 2026-01-03T00:00:00.5Z


def seed(app: object, clock: ManualClock, routes: int, hours: int) -> int:
    monitoring = app.extensions["centinela"]  # type: ignore[attr-defined]
    rollups = RequestRollups(monitoring.store, clock)
    recorder = RequestRecorder(clock)
    rng = random.Random(7)
    names = [f"/api/route{i}/<id>" for i in range(routes)]
    rows = 0
    start = NOW - hours * 3600
    for minute in range(hours * 60):
        clock.set(start + minute * 60 + 1)
        for name in names:
            for status, share in ((200, 27), (404, 2), (500, 1)):
                for _ in range(share):
                    recorder.record("GET", name, status, rng.lognormvariate(-3.5, 0.7))
        rows += flush_recorder(recorder, rollups)
    clock.set(NOW)
    events = [{"type": "payment", "outcome": "succeeded" if rng.random() < 0.97 else "failed",
               "amount": rng.randint(500, 20000), "currency": "EUR",
               "timestamp": _stamp(NOW - rng.uniform(0, hours * 3600))} for _ in range(2000)]
    from monitoring import business

    recorder_for = business.recorder_for(monitoring)
    for i in range(0, len(events), 500):
        recorder_for.record_raw(events[i:i + 500])
    monitoring.health.run_round()
    return rows


def _stamp(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def timed(build: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        build()  # type: ignore[operator]
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as var:
        settings = Settings.from_env({
            "METRICS_API_KEY": "bench-metrics-key-0123456789", "ADMIN_API_KEY": "bench-admin-key-0123456789",
            "VAR_DIR": var, "DATABASE_URL": f"sqlite:///{var}/bench.db", "SCHEDULER_ENABLED": "false"})
        clock = ManualClock(NOW)
        app = create_app(settings, clock=clock)
        started = time.perf_counter()
        rows = seed(app, clock, args.routes, args.hours)
        print(f"seeded {rows} rollup rows ({args.routes} routes x 3 status classes x {args.hours * 60} minutes) "
              f"in {time.perf_counter() - started:.1f}s")
        sources = app.extensions["centinela"].services.dashboard
        memo = BucketMemo()  # one per process, shared by its refreshes, as the endpoint does
        cold = timed(lambda: build_dashboard(sources, FULL, memo), 1)[0]
        clock.advance(5)  # the next refresh: the newest minute may have changed, the others have not
        warm = timed(lambda: build_dashboard(sources, FULL, memo), args.runs)
        public = timed(lambda: build_dashboard(sources, PUBLIC, memo), args.runs)
        memo_free = timed(lambda: build_dashboard(sources, FULL), 1)[0]
        print(f"full view, cold (first refresh of a process): {cold * 1000:8.1f} ms")
        print(f"full view, warm (median of {args.runs}):             {statistics.median(warm) * 1000:8.1f} ms")
        print(f"public view (median of {args.runs}):                 {statistics.median(public) * 1000:8.1f} ms")
        print(f"full view without the memo (every bucket decoded): {memo_free * 1000:8.1f} ms")
        app.extensions["centinela"].shutdown()


if __name__ == "__main__":
    main()
