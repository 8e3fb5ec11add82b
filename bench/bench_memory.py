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
* then with 50 load balancer probes (``/api/health/live`` and ``/ready``) answered: a view
  module is loaded on its first request (monitoring.api.routes), and every worker answers these;
* then after 100k ... N recorded requests: what recording adds, which must stay flat.

Before that, a fresh interpreter prints the breakdown of ``loaded``: the RSS added by importing
each group of modules in turn (SQLAlchemy, Centinela's own), then by ``Monitoring(app)`` and the
first 1,000 requests, which heavy modules it found loaded, and then what the probes and one
request to each other endpoint load on top. (``python -X importtime`` says the same in time;
RSS is what a worker pays.)

``--gunicorn`` instead reads each worker's RSS under a real ``gunicorn -w 2``, bare and with
``Monitoring(app)``, after load and a minute of the scheduler's jobs (which the in-process
figures leave out: there the jobs run on the main thread, on demand).
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
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


# What loading Centinela imports, in the order a worker meets it; each group's cost is what it adds
# to the groups before it (sqlalchemy imports asyncio, so asyncio is SQLAlchemy's).
IMPORT_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SQLAlchemy core, SQLite dialect", ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.dialects.sqlite")),
    ("Centinela's own modules (services)", ("monitoring.extension", "monitoring.services")),
)
# Loaded only when their feature is used: listed if found after Monitoring(app) and 1,000 requests.
HEAVY = ("prometheus_client", "spectree", "limits", "apscheduler", "google.protobuf", "opentelemetry.proto", "brotli", "apprise",
         "smtplib", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "alembic")


def serve_probes(app: Any, count: int) -> None:
    """What a load balancer asks every worker, alternately: liveness and readiness."""
    from werkzeug.test import EnvironBuilder

    environs = [EnvironBuilder(path=path).get_environ() for path in ("/api/health/live", "/api/health/ready")]

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    for n in range(count):
        for _ in app(dict(environs[n % 2]), start_response):
            pass


# The rest of Centinela's GET endpoints, with the admin key (the OpenAPI document last: spectree).
ENDPOINTS = ("/api/health/check", "/api/monitoring/uptime", "/api/monitoring/metrics",
             "/api/monitoring/metrics?format=prometheus", "/api/monitoring/alerts?action=active",
             "/api/monitoring/audit", "/api/monitoring/errors", "/api/monitoring/dashboard/data",
             "/api/monitoring/dashboard?format=html", "/api/openapi.json")


def settings_env(workdir: Path) -> dict[str, str]:
    return {
        "VAR_DIR": str(workdir), "DATABASE_URL": f"sqlite:///{workdir / 'centinela.db'}",
        "METRICS_API_KEY": "bench-metrics-key-0123456789", "ADMIN_API_KEY": "bench-admin-key-0123456789",
        "RATELIMIT_ENABLED": "false", "SCHEDULER_ENABLED": "false",
    }


def settings_in(workdir: Path) -> Any:
    from monitoring.settings import Settings

    return Settings.from_env(settings_env(workdir))


def migrate(settings: Any) -> None:
    # The store exists before a worker starts (gunicorn's master, or the first worker, made it):
    # a worker at head loads no migration code.
    import subprocess

    subprocess.run([sys.executable, "-c", "import sys; from monitoring.store.database import Store; "
                    "Store(sys.argv[1]).migrate()", settings.database_url], check=True,
                   env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})


def breakdown() -> None:
    """The parts of ``loaded``, in a fresh interpreter (run as ``--breakdown``)."""
    import importlib

    rng = random.Random(5)
    serve(host_app(), 2_000, rng)
    start = before = rss_mb()
    for name, modules in IMPORT_GROUPS:
        for module in modules:
            importlib.import_module(module)
        now = rss_mb()
        print(f"  import {name + ':':42s} {now - before:+5.1f} MB")
        before = now
    from monitoring.clock import ManualClock
    from monitoring.extension import Monitoring

    workdir = Path(tempfile.mkdtemp(prefix="centinela-memory-"))
    settings = settings_in(workdir)
    migrate(settings)
    known = set(sys.modules)
    clock = ManualClock()
    app = host_app()
    monitoring = Monitoring(app, settings=settings, clock=clock)
    now = rss_mb()
    print(f"  {'Monitoring(app) (store engine, keys, objects):':49s} {now - before:+5.1f} MB")
    before = now
    scheduler = monitoring.scheduler
    scheduler.heartbeat()

    def tick(n: int) -> None:
        clock.advance(0.001)
        if n % FLUSH_EVERY == FLUSH_EVERY - 1:
            scheduler.run_process("metrics_flush")

    serve(app, 1_000, rng, tick)
    now = rss_mb()
    print(f"  {'1,000 requests (a flush: the SQLite connection):':49s} {now - before:+5.1f} MB")
    print(f"  {'sum: what a worker serving only the host pays:':49s} {now - start:+5.1f} MB")
    added = sorted({name.split(".")[0] for name in set(sys.modules) - known if not name.startswith("monitoring")})
    heavy = [name for name in HEAVY if name in sys.modules]
    print(f"  third-party packages first imported by Monitoring(app) or the requests: {', '.join(added) or 'none'}")
    print(f"  feature modules loaded: {', '.join(heavy) or 'none'}")
    # Then what Centinela's own endpoints load on their first request (monitoring.api.routes).
    before = now
    serve_probes(app, 50)
    now = rss_mb()
    print(f"  {'then 50 load balancer probes (/live, /ready):':49s} {now - before:+5.1f} MB")
    before = now
    client = app.test_client()
    admin = {"X-API-Key": settings.admin_api_key}
    for path in ENDPOINTS:
        client.get(path, headers=admin)
    now = rss_mb()
    print(f"  {'then one request to each other endpoint:':49s} {now - before:+5.1f} MB "
          f"({', '.join(path.rsplit('/', 1)[-1] for path in ENDPOINTS)})")
    print(f"  feature modules loaded by then: {', '.join(name for name in HEAVY if name in sys.modules)}")
    monitoring.store.dispose()


def gunicorn_app() -> Any:
    """The host app for ``--gunicorn`` (gunicorn calls ``bench_memory:gunicorn_app()``)."""
    app = host_app()
    if os.environ["BENCH_VARIANT"] == "monitoring":
        from monitoring.extension import Monitoring
        from monitoring.settings import Settings

        Monitoring(app, settings=Settings.from_env())
    return app


def under_gunicorn(workers: int, seconds: float) -> None:
    """Each worker's RSS under a real ``gunicorn -w N``: the bare host app, then with
    ``Monitoring(app)``, its scheduler's threads and jobs running (one worker leads: the health
    rounds, rules, delivery, retention), after load and ``seconds`` of jobs."""
    import shutil
    import socket
    import subprocess

    root = Path(__file__).resolve().parents[1]
    workdir = Path(tempfile.mkdtemp(prefix="centinela-memory-gunicorn-"))
    found: dict[str, list[float]] = {}
    for variant in ("bare", "monitoring"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'bench'}", "BENCH_VARIANT": variant,
               **settings_env(workdir / variant), "SCHEDULER_ENABLED": "true"}
        if variant == "monitoring":
            migrate(settings_in(workdir / variant))
        server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                                   "--log-level", "warning", "bench_memory:gunicorn_app()"],
                                  cwd=root / "bench", env=env, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/api/route07/42"
            deadline = time.monotonic() + 30
            while len(psutil.Process(server.pid).children()) < workers and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)
            load(url, 5.0)
            time.sleep(seconds)
            load(url, 3.0)
            found[variant] = sorted(worker.memory_info().rss / 2**20 for worker in psutil.Process(server.pid).children())
        finally:
            server.terminate()
            server.wait(30)
    bare = statistics.mean(found["bare"])
    print(f"under gunicorn -w {workers} ({'wrk' if shutil.which('wrk') else 'a Python client'}: 8 s of load, "
          f"{seconds:.0f} s of the scheduler's jobs):")
    print(f"  bare host app, each worker:        {', '.join(f'{rss:.1f}' for rss in found['bare'])} MB")
    print(f"  with Monitoring(app), each worker: {', '.join(f'{rss:.1f}' for rss in found['monitoring'])} MB  "
          f"(added: {', '.join(f'{rss - bare:+.1f}' for rss in found['monitoring'])} MB; the most is the leader's)")


def load(url: str, seconds: float) -> None:
    import shutil
    import subprocess
    import urllib.request

    if shutil.which("wrk"):
        subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds:.0f}s", url], capture_output=True, check=True)
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2_000_000)
    parser.add_argument("--breakdown", action="store_true", help="only print the parts of loading Centinela")
    parser.add_argument("--gunicorn", action="store_true", help="only print each worker's RSS under a real gunicorn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="of the scheduler's jobs, with --gunicorn")
    args = parser.parse_args()
    if args.breakdown:
        breakdown()
        return
    if args.gunicorn:
        under_gunicorn(args.workers, args.seconds)
        return
    import subprocess

    print("loading Centinela, part by part (a fresh interpreter):", flush=True)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--breakdown"], check=True)
    rng = random.Random(5)

    bare = host_app()
    serve(bare, 2_000, rng)
    rss_bare = rss_mb()

    from monitoring.clock import ManualClock
    from monitoring.extension import Monitoring

    workdir = Path(tempfile.mkdtemp(prefix="centinela-memory-"))
    settings = settings_in(workdir)
    migrate(settings)
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
    serve_probes(app, 50)  # a worker behind a load balancer also answers its probes
    rss_probed = rss_mb()
    print(f"and 50 load balancer probes (/live, /ready): RSS {rss_probed:7.1f} MB  "
          f"(with the probes' views: {rss_probed - rss_bare:+.1f} MB)")
    rss_loaded = rss_probed
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
          f"(target < 25 MB), by loading Centinela and answering probes {rss_loaded - rss_bare:+.1f} MB")
    monitoring.store.dispose()


if __name__ == "__main__":
    main()
