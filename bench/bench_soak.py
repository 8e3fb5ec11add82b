"""Soak: memory of `gunicorn -w 3` under 10 minutes of mixed traffic (prints figures, no pass/fail).

Run from the repo root:  .venv/bin/python bench/bench_soak.py [--minutes 10 --clients 6]

examples/shop (a Flask shop with Monitoring(app)) is served by a real gunicorn with three sync
workers on a SQLite store; six client threads in this process send a mix of what a festival
sees: ticket pages (some 404s), checkouts (business events), an exception now and then, the
metrics export (JSON and Prometheus), the dashboard feed and posted events. Every 30 s the RSS
of each worker is read from /proc. Printed: the curve, and the slope over the last half (after
warm-up: imports, caches and the first rollups settle in the first minutes) in MB per 5 minutes,
per worker; the target is flat, under 1 MB per 5 minutes.

--memory-breakdown also says where each worker's RSS went over the last half (bench/soak_memory.py):
SQLite's heap, glibc's heap in use and free-but-kept, live prepared statements. The process
environment passes through, so e.g. ``MALLOC_ARENA_MAX=2 .venv/bin/python bench/bench_soak.py``
runs the workers with two glibc arenas.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
KEY = "soak-metrics-key-0123456789abcdef"
ADMIN = "soak-admin-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def traffic(url: str, stop: threading.Event, seed: int, counts: dict[str, int], lock: threading.Lock) -> None:
    rng = random.Random(seed)
    session = requests.Session()
    keyed = {"X-API-Key": KEY}
    while not stop.is_set():
        roll = rng.random()
        try:
            if roll < 0.55:
                session.get(f"{url}/tickets/{rng.randrange(1, 5000)}", timeout=10)
                kind = "ticket"
            elif roll < 0.62:
                session.get(f"{url}/no-such-page/{rng.randrange(1, 10**6)}", timeout=10)
                kind = "404"
            elif roll < 0.72:
                session.post(f"{url}/checkout", data={"amount": str(rng.randrange(500, 9000))}, timeout=10)
                kind = "checkout"
            elif roll < 0.74:
                session.get(f"{url}/boom", timeout=10)
                kind = "exception"
            elif roll < 0.80:
                session.get(f"{url}/api/monitoring/metrics", headers=keyed, timeout=10)
                kind = "metrics"
            elif roll < 0.84:
                session.get(f"{url}/api/monitoring/metrics?format=prometheus", headers=keyed, timeout=10)
                kind = "prometheus"
            elif roll < 0.92:
                session.get(f"{url}/api/monitoring/dashboard/data", headers=keyed, timeout=10)
                kind = "dashboard"
            else:
                event = {"type": "ticket", "operation": rng.choice(["scanned", "validated"]),
                         "ticket_type": rng.choice(["day", "weekend"])}
                session.post(f"{url}/api/monitoring/events", json=event, headers=keyed, timeout=10)
                kind = "event"
        except requests.RequestException:
            kind = "failed"
        with lock:
            counts[kind] = counts.get(kind, 0) + 1


def worker_rss_mb(master: int) -> dict[int, float]:
    try:
        return {child.pid: child.memory_info().rss / 2**20 for child in psutil.Process(master).children()}
    except psutil.Error:
        return {}


def slope_per_5_minutes(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per 300 s."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    return 300 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument("--memory-breakdown", action="store_true",
                        help="log each worker's SQLite heap, glibc heap and prepared statements (bench/soak_memory.py)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="centinela-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "METRICS_API_KEY": KEY, "ADMIN_API_KEY": ADMIN,
           "VAR_DIR": str(workdir / "var"), "DATABASE_URL": f"sqlite:///{workdir / 'var' / 'centinela.db'}",
           "RATELIMIT_ENABLED": "false", "DASHBOARD_PUBLIC": "true"}
    if args.memory_breakdown:
        (workdir / "memory").mkdir()
        env["SOAK_MEMORY_DIR"] = str(workdir / "memory")
        env["GUNICORN_CMD_ARGS"] = f"-c {ROOT / 'bench' / 'soak_memory.py'} " + env.get("GUNICORN_CMD_ARGS", "")
    log = open(workdir / "gunicorn.log", "wb")
    shop = workdir / "shop"
    subprocess.run(["cp", "-r", str(ROOT / "examples" / "shop"), str(shop)], check=True)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen([str(gunicorn), "-w", "3", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                                "shop:app"], cwd=shop, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/api/health/live", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    print(f"gunicorn -w 3 serving examples/shop on {url}; {args.clients} clients for {args.minutes:g} min; "
          f"RSS every {args.every:g} s")

    stop, lock = threading.Event(), threading.Lock()
    counts: dict[str, int] = {}
    clients = [threading.Thread(target=traffic, args=(url, stop, seed, counts, lock), daemon=True)
               for seed in range(args.clients)]
    for client in clients:
        client.start()
    started = time.monotonic()
    samples: list[tuple[float, dict[int, float]]] = []
    try:
        while time.monotonic() - started < args.minutes * 60:
            samples.append((time.monotonic() - started, worker_rss_mb(process.pid)))
            elapsed, rss = samples[-1]
            with lock:
                served = sum(counts.values())
            print(f"  {elapsed:6.0f} s  requests {served:8,}  worker RSS MB: "
                  + ", ".join(f"{pid}:{mb:6.1f}" for pid, mb in sorted(rss.items())), flush=True)
            time.sleep(args.every)
        samples.append((time.monotonic() - started, worker_rss_mb(process.pid)))
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()

    print(f"\nrequests by kind: {dict(sorted(counts.items()))}")
    half = samples[len(samples) // 2:]
    pids = set.intersection(*(set(rss) for _, rss in half)) if half else set()
    for pid in sorted(pids):
        points = [(t, rss[pid]) for t, rss in half]
        print(f"worker {pid}: {points[0][1]:.1f} MB -> {points[-1][1]:.1f} MB over the last "
              f"{(points[-1][0] - points[0][0]) / 60:.1f} min; slope {slope_per_5_minutes(points):+.2f} MB per 5 min "
              f"(target: under 1 MB per 5 min)")
    if not pids:
        print("no worker lived through the second half (recycled?): see the curve above")
    if args.memory_breakdown:
        print_memory_breakdown(workdir / "memory")


def print_memory_breakdown(directory: Path) -> None:
    """Per worker, each figure at the start of the last half of its lines and at the end (bench/soak_memory.py)."""
    names = ("RSS", "SQLite heap", "malloc in use", "malloc free", "py blocks", "sqlite stmts", "distinct SQL")
    for path in sorted(directory.glob("*.txt")):
        rows = [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]
        half = rows[len(rows) // 2:]
        if not half:
            continue
        first, last = half[0], half[-1]
        figures = ", ".join(f"{name} {a:g} -> {b:g}" for name, a, b in zip(names, first[1:], last[1:], strict=True))
        print(f"worker {path.stem} from {first[0]:.0f} s to {last[0]:.0f} s (MB unless a count): {figures}")


if __name__ == "__main__":
    main()
