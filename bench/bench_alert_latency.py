"""Alert latency under `gunicorn -w 3` (prints figures, no pass/fail; the target is <= 2 s).

Run from the repo root:  .venv/bin/python bench/bench_alert_latency.py [--alerts 50] [--stores sqlite,postgresql]

PostgreSQL runs when BENCH_DATABASE_URL or TEST_DATABASE_URL names a server (a fresh schema is
made and dropped); otherwise it says so and runs SQLite only.

Two kinds of breach, each --alerts times, against a real local receiver:

* manual: a critical ``action=trigger`` posted to whichever worker answers. Measured from the
  request being sent (the breach is written by that request) to the webhook receiving it, and
  to the escalation webhook receiving the escalation (critical: escalated at once).
* rule: a critical dependency (a HEALTH_CHECKS tcp item on a local port) starts refusing; the
  leader's health round (HEALTH_CHECK_INTERVAL=0.5) records the failure, the evaluation that
  follows the round fires the derived ``OrdersDbUnavailable`` rule. Measured from the alert's
  ``firedAt`` (the evaluation that wrote it) to the webhook receiving it, and end to end from
  the port refusing (so including up to one health interval). Then the port accepts again and
  the resolve is awaited before the next breach.

Everything else is the default configuration: ALERT_EVALUATION_INTERVAL stays 15 s and
NOTIFY_DELIVERY_INTERVAL 5 s, so what is measured is delivery started by the commit itself.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.support.gunicorn import GunicornServer  # noqa: E402
from tests.support.receiver import RecordedRequest, RecordingHTTPServer, SwitchableTCPServer  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789abcdef"
METRICS_KEY = "bench-metrics-key-0123456789abcdef"
ALERTS = "/api/monitoring/alerts"
WAIT = 20.0  # seconds a single notice may take before the run is declared broken


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def wait_for(receiver: RecordingHTTPServer, match: Callable[[RecordedRequest], bool], timeout: float = WAIT) -> RecordedRequest:
    """The first recorded request that matches, polling the receiver until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        for request in receiver.requests:
            if match(request):
                return request
        if time.monotonic() > deadline:
            raise TimeoutError("no matching notice arrived")
        time.sleep(0.002)


def webhook_alert(request: RecordedRequest, path: str, event: str, name: str, key: str, value: str) -> bool:
    if request.path != path:
        return False
    body = request.json()
    return body["event"] == event and any(
        a["labels"].get("alertname") == name and a["annotations"].get(key) == value for a in body["alerts"])


def webhook_names(request: RecordedRequest, path: str, event: str, name: str, after: float) -> bool:
    if request.path != path or request.received_at < after:
        return False
    body = request.json()
    return body["event"] == event and any(a["labels"].get("alertname") == name for a in body["alerts"])


def figures(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    return (f"{label:<48} n={len(ordered):<3} p50={statistics.median(ordered) * 1000:7.1f} ms  "
            f"max={ordered[-1] * 1000:7.1f} ms")


def run(store: str, database_url: str | None, alerts: int, workdir: Path) -> list[str]:
    with RecordingHTTPServer() as receiver, SwitchableTCPServer() as orders_db:
        env = {
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "ALERT_WEBHOOK_URL": receiver.url + "/hook",
            "ESCALATION_WEBHOOK_URL": receiver.url + "/escalate",
            "HEALTH_CHECKS": json.dumps([{"name": "orders-db", "type": "tcp", "host": "127.0.0.1",
                                          "port": orders_db.port, "timeout": 0.5, "critical": True}]),
            "HEALTH_CHECK_INTERVAL": "0.5",
            "RATELIMIT_ENABLED": "false",
        }
        if database_url:
            env["DATABASE_URL"] = database_url
        server = GunicornServer(workdir / store, env=env, workers=3)
        server.start()
        try:
            session = requests.Session()
            session.headers["Connection"] = "close"  # each request may land on another worker
            trigger, escalate = [], []
            for i in range(alerts):
                description = f"bench {uuid.uuid4().hex[:8]} {i}"
                started = time.time()
                answer = session.post(server.url + ALERTS, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10, json={
                    "action": "trigger", "severity": "critical", "description": description, "service": f"bench-{i}"})
                answer.raise_for_status()
                fired = wait_for(receiver, lambda r: webhook_alert(r, "/hook", "firing", "ManualAlert", "description",
                                                                   description))
                paged = wait_for(receiver, lambda r: webhook_alert(r, "/escalate", "escalated", "ManualAlert",
                                                                   "description", description))
                trigger.append(fired.received_at - started)
                escalate.append(paged.received_at - started)
            written, end_to_end = [], []
            for _ in range(alerts):
                orders_db.refuse()
                refused = time.time()
                fired = wait_for(receiver, lambda r: webhook_names(r, "/hook", "firing", "OrdersDbUnavailable", refused))
                (alert,) = [a for a in fired.json()["alerts"] if a["labels"]["alertname"] == "OrdersDbUnavailable"]
                written.append(fired.received_at - epoch(alert["startsAt"]))
                end_to_end.append(fired.received_at - refused)
                orders_db.accept()
                recovered = time.time()
                wait_for(receiver, lambda r: webhook_names(r, "/hook", "resolved", "OrdersDbUnavailable", recovered))
            return [
                f"-- {store}, gunicorn -w 3",
                figures("manual critical: request sent -> webhook", trigger),
                figures("manual critical: request sent -> escalation", escalate),
                figures("rule breach: alert written -> webhook", written),
                figures("rule breach: port refusing -> webhook (+ round)", end_to_end),
            ]
        finally:
            server.stop()


def postgres_schema(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        for store in args.stores.split(","):
            if store == "sqlite":
                lines += run("sqlite", None, args.alerts, Path(tmp))
            elif store == "postgresql":
                base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
                if not base:
                    lines.append("-- postgresql: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL)")
                    continue
                url, drop = postgres_schema(base)
                try:
                    lines += run("postgresql", url, args.alerts, Path(tmp))
                finally:
                    drop()
    print("alert latency (target <= 2 s):")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
