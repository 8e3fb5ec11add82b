"""OTLP ingest throughput: spans per second one gunicorn worker accepts (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_ingest.py [--seconds 20 --clients 2 --spans 512]

A real gunicorn with ONE sync worker (the service's gunicorn.conf.py, a SQLite store, the
scheduler on, so the recorder is flushed every METRICS_FLUSH_INTERVAL as in production; rate
limiting off, as one load generator would be refused) receives protobuf
ExportTraceServiceRequests of 512 SERVER spans each, made by the OpenTelemetry SDK's own
encoder (20 routes, 3 methods, a few 5xx), posted by ``--clients`` threads over POST /v1/traces
with the ingest key. Reported:

* spans/s accepted (wall clock, every answer checked to be 200), and exports/s;
* the worker's CPU time per span (utime + stime from /proc, so other processes on a shared
  machine do not inflate it): what one span costs, decode + record + its share of the flush;
* the worker's RSS after warm-up and at the end (flat memory: the recorder keeps one
  aggregate per minute and route, whatever the number of spans).

Target: at least 10,000 spans/s per worker. On a loaded or 2-core machine the client threads
share the CPUs with the worker: the CPU time per span is the figure that does not depend on it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import requests  # noqa: E402

from tests.support.gunicorn import GunicornServer  # noqa: E402
from tests.support.otel_sdk import NANOS, SpanRecorder  # noqa: E402

INGEST_KEY = "bench_ingest_key_0123456789abcdef"
ROUTES = [f"/api/v1/resource{i}/:id" for i in range(20)]


def batch_body(spans: int) -> bytes:
    """One export of ``spans`` server spans that ended in the last minute (protobuf, as the SDK sends it)."""
    recorder = SpanRecorder("bench-shop")
    now_ns = time.time_ns()
    for i in range(spans):
        status = 500 if i % 97 == 0 else 200
        method = ("GET", "POST", "PUT")[i % 3]
        duration_ns = 2_000_000 + (i * 7919) % 300_000_000
        recorder.request(method, ROUTES[i % len(ROUTES)], status, now_ns - 30 * NANOS + i * 1000, duration_ns)
    return recorder.otlp_bytes()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def load(url: str, body: bytes, seconds: float, clients: int) -> tuple[int, int]:
    """Post ``body`` from ``clients`` threads for ``seconds``; (exports answered 200, others)."""
    stop = time.monotonic() + seconds
    ok = [0] * clients
    bad = [0] * clients
    headers = {"Content-Type": "application/x-protobuf", "X-API-Key": INGEST_KEY}

    def client(index: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            response = session.post(url, data=body, headers=headers, timeout=30)
            if response.status_code == 200:
                ok[index] += 1
            else:
                bad[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok), sum(bad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--spans", type=int, default=512)
    args = parser.parse_args()

    body = batch_body(args.spans)
    with tempfile.TemporaryDirectory() as workdir:
        server = GunicornServer(Path(workdir), env={
            "INGEST_API_KEY": INGEST_KEY, "RATELIMIT_ENABLED": "false", "METRICS_FLUSH_INTERVAL": "5",
        }, workers=1)
        server.start()
        try:
            (worker,) = server.worker_pids()
            url = server.url + "/v1/traces"
            warm, _ = load(url, body, 3.0, args.clients)  # warm-up: imports, first routes, first flush
            time.sleep(6)  # let a flush run so the warm-up's aggregate is written and dropped
            rss_before = rss_mb(worker)
            cpu_before = cpu_seconds(worker)
            started = time.monotonic()
            ok, bad = load(url, body, args.seconds, args.clients)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(worker) - cpu_before
            time.sleep(6)  # one more flush: what the load left behind is written
            rss_after = rss_mb(worker)
            stored = requests.get(server.url + "/api/monitoring/metrics?category=performance&window=15m",
                                  headers={"X-API-Key": (Path(workdir) / "var" / "metrics-api-key").read_text().strip()},
                                  timeout=30).json()["performance"]["requests.count"]
        finally:
            server.stop()
    spans = ok * args.spans
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          f"(client threads share the CPUs with the worker)")
    print(f"batch: {args.spans} server spans, {len(body):,} bytes protobuf; {args.clients} client threads, "
          f"{args.seconds:.0f} s, 1 gunicorn sync worker")
    print(f"exports: {ok:,} answered 200, {bad} other ({ok / elapsed:,.1f} exports/s)")
    print(f"accepted: {spans / elapsed:,.0f} spans/s per worker (target >= 10,000)")
    if spans:
        print(f"worker CPU: {cpu:.2f} s = {cpu / spans * 1e6:.1f} us per span "
              f"(=> {spans / cpu:,.0f} spans/s per fully busy worker)")
    print(f"worker RSS: {rss_before:.1f} MB after warm-up, {rss_after:.1f} MB after the run "
          f"({rss_after - rss_before:+.1f} MB)")
    expected = (warm + ok) * args.spans
    print(f"requests in the store (warm-up included, 15 min window): {stored:,} of {expected:,} accepted "
          f"({'all there' if stored == expected else 'MISSING ' + format(expected - stored, ',')})")


if __name__ == "__main__":
    main()
