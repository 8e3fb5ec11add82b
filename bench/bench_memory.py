"""Memory a worker spends on request metrics (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_memory.py [--requests 2000000]

One process plays one gunicorn worker of a host app with 20 routes that calls
``Monitoring(app)``. Requests go through the app's WSGI callable, so through the real
middleware and recorder; an injected clock moves 1 ms per request (1,000 requests/s), the
per-process flush job runs every 5 simulated seconds into a SQLite store, and the leader
jobs (downsample, retention) and the system sampler run on their intervals too. The RSS
is read at checkpoints:

* ``bare``: the same host app without Centinela, warmed up (the baseline);
* ``loaded``: with ``Monitoring(app)`` and 1,000 requests served: what loading Centinela
  into a worker costs (imports, store engine, scheduler objects);
* then after 100k ... N recorded requests: what recording adds, which must stay flat.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

ROUTES = 20
FLUSH_EVERY = 5_000  # requests: 5 simulated seconds at 1 ms per request
SAMPLE_EVERY = 15_000
DOWNSAMPLE_EVERY = 600_000


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def host_app() -> Any:
    from flask import Flask

    app = Flask("festival")
    for index in range(ROUTES):
        def view(item_id: int, index: int = index) -> Any:
            if item_id % 200 == 0:
                return {"error": "upstream"}, 503
            return {"route": index, "item": item_id}

        app.add_url_rule(f"/api/route{index:02d}/<int:item_id>", f"route{index}", view)
    return app


def serve(app: Any, count: int, rng: random.Random, on_request: Callable[[int], None] | None = None) -> None:
    from werkzeug.test import EnvironBuilder

    environs = [EnvironBuilder(path=f"/api/route{i:02d}/{rng.randrange(1, 10**6)}").get_environ() for i in range(ROUTES)]
    environs.append(EnvironBuilder(path="/no/such/page").get_environ())

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        return None

    for n in range(count):
        environ = dict(environs[n % len(environs)])
        environ["PATH_INFO"] = environ["PATH_INFO"].rsplit("/", 1)[0] + f"/{rng.randrange(1, 10**6)}"
        for _ in app(environ, start_response):
            pass
        if on_request is not None:
            on_request(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2_000_000)
    args = parser.parse_args()
    rng = random.Random(5)

    bare = host_app()
    serve(bare, 2_000, rng)
    rss_bare = rss_mb()

    from monitoring.clock import ManualClock
    from monitoring.extension import Monitoring
    from monitoring.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="centinela-memory-"))
    settings = Settings.from_env({
        "VAR_DIR": str(workdir), "DATABASE_URL": f"sqlite:///{workdir / 'centinela.db'}",
        "METRICS_API_KEY": "bench-metrics-key-0123456789", "ADMIN_API_KEY": "bench-admin-key-0123456789",
        "RATELIMIT_ENABLED": "false", "SCHEDULER_ENABLED": "false",
    })
    # The store exists before a worker starts (gunicorn's master, or the first worker, made it):
    # a worker at head loads no migration code.
    import subprocess

    subprocess.run([sys.executable, "-c", "import sys; from monitoring.store.database import Store; "
                    "Store(sys.argv[1]).migrate()", settings.database_url], check=True,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    clock = ManualClock()
    app = host_app()
    monitoring = Monitoring(app, settings=settings, clock=clock)
    scheduler = monitoring.scheduler
    scheduler.heartbeat()  # take the leader lease so that the global jobs run here

    def tick(n: int) -> None:
        clock.advance(0.001)
        if n % FLUSH_EVERY == FLUSH_EVERY - 1:
            scheduler.run_process("metrics_flush")
        if n % SAMPLE_EVERY == SAMPLE_EVERY - 1:
            scheduler.run_process("system_sample")
            scheduler.heartbeat()
        if n % DOWNSAMPLE_EVERY == DOWNSAMPLE_EVERY - 1:
            scheduler.run_global("metrics_downsample")
            scheduler.run_global("retention")

    serve(app, 1_000, rng, tick)
    rss_loaded = rss_mb()
    blocks_loaded = sys.getallocatedblocks()
    print(f"bare host app, warmed up:                  RSS {rss_bare:7.1f} MB")
    print(f"with Monitoring(app), 1,000 requests:      RSS {rss_loaded:7.1f} MB  "
          f"(loading Centinela: {rss_loaded - rss_bare:+.1f} MB; Python objects: {blocks_loaded:,} blocks)")
    done = 1_000
    checkpoints = sorted({c for c in (100_000, 250_000, 500_000, 1_000_000, 2_000_000, 3_000_000, args.requests)
                          if c <= args.requests})
    started = time.perf_counter()
    for checkpoint in checkpoints:
        serve(app, checkpoint - done, rng, lambda n, base=done: tick(base + n))
        done = checkpoint
        recorder = monitoring.services.metrics.recorder
        print(f"after {done:>9,} recorded requests:        RSS {rss_mb():7.1f} MB  "
              f"(recording: {rss_mb() - rss_loaded:+.1f} MB; Python objects: {sys.getallocatedblocks():,} blocks; "
              f"{recorder.pending_keys} keys pending; {time.perf_counter() - started:.0f} s)")
    scheduler.run_process("metrics_flush")
    from monitoring.metrics.categories import TimeWindow
    from monitoring.metrics.rollups import RequestRollups

    figures = RequestRollups(monitoring.store, clock).figures(TimeWindow(0, clock.now() + 60, "all"))
    print(f"the store holds {figures.count:,} requests over {len(figures.routes)} routes "
          f"(expected {done:,}); per-worker RSS added by recording {rss_mb() - rss_loaded:+.1f} MB "
          f"(target < 25 MB), by loading Centinela {rss_loaded - rss_bare:+.1f} MB")
    monitoring.store.dispose()


if __name__ == "__main__":
    main()
