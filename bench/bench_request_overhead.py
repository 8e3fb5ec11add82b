"""Request overhead of the metrics middleware (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_request_overhead.py [--seconds 3 --rounds 12]

The same small Flask app (one ``/tickets/<int:ticket_id>`` JSON route) is served in four
variants, each by a real gunicorn with ONE sync worker pinned to one CPU, and loaded by
``wrk`` (or, without wrk, a Python keep-alive client) from a second process pinned to the
other CPU:

* ``bare``          the app alone: the baseline, measured in the same run;
* ``middleware``    + Centinela's request hooks and recorder, with the real flush to a
                     SQLite store every METRICS_FLUSH_INTERVAL (5 s) on a background thread;
* ``monitoring``    + the whole ``Monitoring(app)`` (blueprints, scheduler, health checks,
                     flush, system samples; rate limiting off, as its limits apply per
                     address and one load generator would be refused): what a host pays;
* ``prometheus_flask_exporter``  the peer, ``PrometheusMetrics(app, group_by="url_rule")``.

``BENCH_VARIANTS=bare,bare_imports,middleware`` picks variants; ``bare_imports`` (not run by
default) is the bare app with Centinela's middleware modules imported but not installed.

Rounds interleave the variants (in a rotating order) so that drift on the machine hits them
alike. Reported: the throughput ratio against ``bare`` (paired per round, median; and best
round against best round), and the worker's CPU time per request, all its threads (from
/proc), whose difference from ``bare`` is the time added per request. CPU time is not taken
by other processes the way wall time is, but on a busy machine it still grows with them
(caches, a shared core: the same app measured 250 to 420 us a request in one run), so it is
shown three ways: the difference of the medians, the median of the per-round differences and
the difference of the least rounds. It is also split into the request (main) thread's and the
other threads' (the scheduler's jobs), and each worker's CPU per second with no load at all is
measured after the rounds. A third figure calls each app's WSGI callable in this process (no
sockets, no gunicorn, no scheduler): the CPU the hooks add, best of 7.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = tuple(os.environ.get("BENCH_VARIANTS", "bare,middleware,monitoring,prometheus_flask_exporter").split(","))
FLUSH_INTERVAL = 5.0


# --- the app under test (gunicorn imports this module and calls build_app) -----------------


def build_app(variant: str | None = None) -> Any:
    """The benchmark app in one variant; gunicorn calls it as ``bench_request_overhead:build_app()``."""
    from flask import Flask

    variant = variant or os.environ["BENCH_VARIANT"]
    app = Flask("tickets")

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"id": ticket_id, "event": "festival", "status": "valid"}

    if variant == "middleware":
        _install_middleware_only(app)
    elif variant == "monitoring":
        from monitoring.extension import Monitoring
        from monitoring.settings import Settings

        Monitoring(app, settings=Settings.from_env())
    elif variant == "prometheus_flask_exporter":
        from prometheus_flask_exporter import PrometheusMetrics

        PrometheusMetrics(app, group_by="url_rule")
    elif variant == "bare_imports":
        import monitoring.api.middleware  # noqa: F401
        import monitoring.metrics.rollups  # noqa: F401
    elif variant != "bare":
        raise ValueError(variant)
    return app


def _install_middleware_only(app: Any) -> None:
    """Our hooks and recorder, flushed for real to a SQLite store on a background thread."""
    from monitoring.api.middleware import install_request_hooks
    from monitoring.clock import SystemClock
    from monitoring.metrics.recorder import RequestRecorder
    from monitoring.metrics.rollups import RequestRollups, flush_recorder
    from monitoring.store.database import Store

    clock = SystemClock()
    store = Store(os.environ["BENCH_DATABASE_URL"], clock)
    store.migrate()
    recorder = RequestRecorder(clock)
    rollups = RequestRollups(store, clock)
    install_request_hooks(app, recorder)

    def flush_forever() -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            flush_recorder(recorder, rollups)

    threading.Thread(target=flush_forever, daemon=True, name="metrics-flush").start()


# --- driving gunicorn and the load -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


class Server:
    def __init__(self, variant: str, workdir: Path, cpu: int | None) -> None:
        self.variant = variant
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        var_dir = workdir / variant
        var_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}",
            "BENCH_VARIANT": variant,
            "BENCH_DATABASE_URL": f"sqlite:///{var_dir / 'bench.db'}",
            "VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'centinela.db'}",
            "METRICS_API_KEY": "bench-metrics-key-0123456789",
            "ADMIN_API_KEY": "bench-admin-key-0123456789",
            "RATELIMIT_ENABLED": "false",
            "METRICS_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
        }
        # The store exists before the worker starts, as in a deployment where the master or an
        # earlier worker made it: this worker finds it at head and never loads Alembic, so its
        # RSS is a serving worker's.
        database_url = env["BENCH_DATABASE_URL" if variant == "middleware" else "DATABASE_URL"]
        subprocess.run([sys.executable, "-c", "import sys; from monitoring.store.database import Store; "
                        "Store(sys.argv[1]).migrate()", database_url], cwd=ROOT, env=env, check=True)
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers", "1", "--worker-class", "sync", "--bind", f"127.0.0.1:{self.port}",
            "--backlog", "2048", "--log-level", "warning",
            "bench_request_overhead:build_app()",
        ]
        if cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(cpu), *command]
        self.log = open(var_dir / "gunicorn.log", "wb")
        self.process = subprocess.Popen(command, cwd=ROOT / "bench", env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn for {self.variant} exited; see its log")
            try:
                with urllib.request.urlopen(f"{self.url}/tickets/1", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn for {self.variant} did not start")

    def _worker(self) -> Any:
        import psutil

        (worker,) = psutil.Process(self.process.pid).children()
        return worker

    def worker_rss_bytes(self) -> int:
        return int(self._worker().memory_info().rss)

    def worker_cpu_seconds(self) -> float:
        """CPU the worker has used, all its threads: unlike wall time, not inflated when other processes take the CPU."""
        times = self._worker().cpu_times()
        return float(times.user + times.system)

    def thread_cpu_seconds(self) -> tuple[float, float]:
        """CPU of the worker's main thread, the one a sync worker serves requests on (its thread
        id is the worker's pid), and of its other threads together (the scheduler's), to the
        nanosecond from /proc/<pid>/task/*/schedstat; a thread that has ended is missing from
        the second, which worker_cpu_seconds (all threads, ended ones too) still counts."""
        pid = self._worker().pid
        main = others = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                ns = int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):  # the thread ended meanwhile
                continue
            if task.name == str(pid):
                main = ns
            else:
                others += ns
        return main / 1e9, others / 1e9

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


def run_wrk(url: str, seconds: float, cpu: int | None) -> tuple[float, int, int]:
    """Requests per second, requests completed, and failed (non-2xx, timed-out) requests."""
    command = ["wrk", "-t1", "-c8", f"-d{seconds:g}s", f"{url}/tickets/12345"]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return rate, done, (int(bad.group(1)) if bad else 0) + (int(timeouts.group(1)) if timeouts else 0)


def run_python_client(url: str, seconds: float, cpu: int | None) -> tuple[float, int, int]:
    """Fallback load without wrk: 8 threads in a second process, one connection per request."""
    script = (
        "import http.client,sys,threading,time\n"
        "port=int(sys.argv[1]);end=time.monotonic()+float(sys.argv[2]);n=[0];bad=[0]\n"
        "def go():\n"
        "    while time.monotonic()<end:\n"
        "        c=http.client.HTTPConnection('127.0.0.1',port);c.request('GET','/tickets/12345')\n"
        "        r=c.getresponse();r.read();c.close();n[0]+=1;bad[0]+=r.status!=200\n"
        "ts=[threading.Thread(target=go) for _ in range(8)];[t.start() for t in ts];[t.join() for t in ts]\n"
        "print(n[0]/float(sys.argv[2]),n[0],bad[0])\n"
    )
    port = url.rsplit(":", 1)[1]
    command = [sys.executable, "-c", script, port, str(seconds)]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    rate, done, bad = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return float(rate), int(done), int(bad)


# --- in-process: the WSGI callable without sockets -----------------------------------------


def in_process_us_per_request(variant: str, workdir: Path, n: int = 20_000, repeats: int = 7) -> float:
    from werkzeug.test import EnvironBuilder

    os.environ.update(
        BENCH_DATABASE_URL=f"sqlite:///{workdir / ('inproc-' + variant + '.db')}",
        VAR_DIR=str(workdir / f"inproc-{variant}"),
        DATABASE_URL=f"sqlite:///{workdir / ('inproc-centinela-' + variant + '.db')}",
        METRICS_API_KEY="bench-metrics-key-0123456789",
        ADMIN_API_KEY="bench-admin-key-0123456789",
        RATELIMIT_ENABLED="false",
        SCHEDULER_ENABLED="false",
    )
    app = build_app(variant)
    environ = EnvironBuilder(path="/tickets/12345", method="GET").get_environ()

    def start_response(status: str, headers: list[tuple[str, str]]) -> Callable[[bytes], None]:
        return lambda data: None

    def one() -> None:
        for _chunk in app(dict(environ), start_response):
            pass

    for _ in range(2000):  # warm caches (route labels, lazy imports)
        one()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            one()
        best = min(best, time.perf_counter() - started)
    monitoring = app.extensions.get("centinela")
    if monitoring is not None:
        monitoring.shutdown()
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds per variant")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="the idle measurement after the rounds")
    args = parser.parse_args()

    cpus = _cpus()
    server_cpu, load_cpu = (cpus[-1], cpus[0]) if len(cpus) >= 2 else (None, None)
    load = run_wrk if shutil.which("wrk") else run_python_client
    print(f"Python {sys.version.split()[0]}; {len(cpus)} CPUs; gunicorn 1 sync worker on CPU {server_cpu}, "
          f"load by {'wrk -t1 -c8' if load is run_wrk else 'a Python client (8 threads)'} on CPU {load_cpu}; "
          f"{args.rounds} rounds x {args.seconds:g} s per variant, interleaved")

    workdir = Path(tempfile.mkdtemp(prefix="centinela-bench-"))
    servers = {variant: Server(variant, workdir, server_cpu) for variant in VARIANTS}
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    cpu_us: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    request_thread_us: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    other_threads_us: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    failures: dict[str, int] = {variant: 0 for variant in VARIANTS}
    idle_ms_per_s: dict[str, float] = {}
    try:
        for variant in VARIANTS:  # warm-up: imports, first requests
            load(servers[variant].url, 1.0, load_cpu)
        for round_number in range(args.rounds):
            # Rotate the order each round so that no variant always runs right after another.
            shift = round_number % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                server = servers[variant]
                cpu_before, (main_before, others_before) = server.worker_cpu_seconds(), server.thread_cpu_seconds()
                rate, done, bad = load(server.url, args.seconds, load_cpu)
                cpu_us[variant].append((server.worker_cpu_seconds() - cpu_before) / done * 1e6)
                main_after, others_after = server.thread_cpu_seconds()
                request_thread_us[variant].append((main_after - main_before) / done * 1e6)
                other_threads_us[variant].append((others_after - others_before) / done * 1e6)
                rates[variant].append(rate)
                failures[variant] += bad
        # With no load at all, what a worker spends by itself (the scheduler's jobs, its threads).
        before = {variant: sum(servers[variant].thread_cpu_seconds()) for variant in VARIANTS}
        started = time.monotonic()
        time.sleep(args.idle_seconds)
        elapsed = time.monotonic() - started
        for variant in VARIANTS:
            idle_ms_per_s[variant] = (sum(servers[variant].thread_cpu_seconds()) - before[variant]) / elapsed * 1e3
        rss = {variant: servers[variant].worker_rss_bytes() for variant in VARIANTS}
    finally:
        for server in servers.values():
            server.stop()

    # Wall-clock throughput is what users see, but this machine is shared: other processes
    # take the CPU at random moments. So: (1) ratios are paired, each variant against the bare
    # run of the same round, and the best round is shown too (interference only slows);
    # (2) the worker's own CPU time per request, which other processes do not inflate.
    bare_rates = rates["bare"]
    bare_cpu = statistics.median(cpu_us["bare"])
    bare_thread = statistics.median(request_thread_us["bare"])
    print("\nunder gunicorn, 1 sync worker:")
    print(f"  {'variant':<27} {'req/s':>7} {'ratio':>7} {'best ratio':>10} {'worker CPU us/req':>18} "
          f"{'added':>7} {'paired':>7} {'least':>7} {'req thread':>10} {'others':>7} {'idle ms/s':>9} {'worker RSS':>11} failed")
    for variant in VARIANTS:
        ratio = statistics.median(v / b for v, b in zip(rates[variant], bare_rates, strict=False))
        best = max(rates[variant]) / max(bare_rates)
        cpu = statistics.median(cpu_us[variant])
        paired = statistics.median(v - b for v, b in zip(cpu_us[variant], cpu_us["bare"], strict=False))
        thread = statistics.median(request_thread_us[variant])
        others = statistics.median(other_threads_us[variant])
        least = min(cpu_us[variant]) - min(cpu_us["bare"])
        print(f"  {variant:<27} {statistics.median(rates[variant]):7.0f} {ratio:7.3f} {best:10.3f} {cpu:18.1f} "
              f"{cpu - bare_cpu:+7.1f} {paired:+7.1f} {least:+7.1f} {thread - bare_thread:+10.1f} {others:7.1f} "
              f"{idle_ms_per_s[variant]:9.2f} {rss[variant] / 2**20:9.1f}MB {failures[variant]}")
    print("  ratio: median over rounds of variant/bare req/s in the same round; best ratio: best round of each;")
    print("  worker CPU us/req: median over rounds of the worker's CPU time (all its threads) / requests served;")
    print("  added: that minus bare's; paired: median over rounds of (variant - bare of the same round);")
    print("  least: the least round of each minus bare's least (interference only adds CPU, as for best ratio);")
    print("  req thread: median of the main (request) thread's CPU per request, minus bare's; others: median")
    print("  of the other threads' CPU per request (the scheduler's: part of 'worker CPU', which counts all);")
    print(f"  idle ms/s: all the worker's threads' CPU per second with no load ({args.idle_seconds:g} s, after the rounds)")
    for variant in VARIANTS:
        print(f"  {variant:<27} req/s by round: {', '.join(f'{r:.0f}' for r in rates[variant])}")
    for variant in VARIANTS:
        print(f"  {variant:<27} CPU us/req by round: {', '.join(f'{c:.0f}' for c in cpu_us[variant])}")

    print("\nin process (WSGI callable, no sockets; best of 7 x 20,000 requests):")
    base = None
    for variant in VARIANTS:
        us = in_process_us_per_request(variant, workdir)
        base = us if base is None else base
        print(f"  {variant:<27} {us:7.1f} us/request  added {us - base:+6.1f} us")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
