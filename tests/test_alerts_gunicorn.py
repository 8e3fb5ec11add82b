"""With a real `gunicorn -w 3`: one breach, caused by real traffic (failed payments posted to
the events endpoint, landing on whichever worker), produces exactly one alert and one
notification, because rule evaluation runs only in the lease holder and each decision is
committed with its notification in one transaction.

These are real processes, so the test polls with deadlines; it never sleeps to wait for a
scheduler tick it could drive itself (the final sleep lets many evaluation intervals pass in
three workers, to show that nothing more arrives).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer
from tests.test_alerts_support import ALERTS, receiver  # noqa: F401

pytestmark = pytest.mark.slow


def test_one_breach_one_alert_one_notification_with_three_workers(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer, tmp_path: Path,
) -> None:
    var = tmp_path / "var"
    server = gunicorn_server(env={
        "METRICS_API_KEY": METRICS_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'centinela.db'}",
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "ALERT_EVALUATION_INTERVAL": "0.3",
        "ALERT_GROUP_WAIT": "0",
        "NOTIFY_DELIVERY_INTERVAL": "0.25",
        "LEASE_TTL": "2",
        "HEALTH_CHECK_INTERVAL": "3600",
        "RATELIMIT_ENABLED": "false",
    }, workers=3, name="three")
    assert len(server.worker_pids()) == 3

    session = requests.Session()
    session.headers["Connection"] = "close"  # a new connection per request: spread over the workers
    for i in range(20):  # 5 of 20 payments fail: 25 % > 1 %
        outcome = "failed" if i % 4 == 0 else "succeeded"
        response = session.post(f"{server.url}/api/monitoring/events", headers={"X-API-Key": METRICS_KEY},
                                json={"type": "payment", "id": f"pi_{i}", "outcome": outcome, "amount": 1999,
                                      "currency": "EUR", "provider": "stripe"}, timeout=10)
        assert response.status_code == 201, response.text

    (request,) = receiver.wait_for(1, timeout=20, path="/hook")
    body = request.json()
    assert body["event"] == "firing" and body["commonLabels"]["alertname"] == "PaymentFailures"
    time.sleep(3)  # ten evaluation intervals in each of three workers: nothing more may arrive
    assert [r.path for r in receiver.requests] == ["/hook"]

    history = session.get(f"{server.url}{ALERTS}?action=history", headers={"X-API-Key": METRICS_KEY},
                          timeout=10).json()["alerts"]
    assert [(a["name"], a["state"]) for a in history] == [("PaymentFailures", "firing")]
    assert history[0]["notifications"]["sent"] == 1
    deliveries = session.get(f"{server.url}{ALERTS}?action=deliveries", headers={"X-Admin-Key": ADMIN_KEY},
                             timeout=10).json()
    assert [(d["event"], d["status"]) for d in deliveries["deliveries"]] == [("firing", "delivered")]
    assert request.header("Idempotency-Key") == deliveries["deliveries"][0]["idempotencyKey"]


def test_after_the_leader_is_killed_a_new_breach_is_notified_within_the_lease_ttl_plus_2s(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer, tmp_path: Path,
) -> None:
    ttl = 3.0
    server = gunicorn_server(env={
        "METRICS_API_KEY": METRICS_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "LEASE_TTL": str(ttl),  # ALERT_EVALUATION_INTERVAL stays 15 s: the takeover itself evaluates
        "HEALTH_CHECK_INTERVAL": "3600",
        "RATELIMIT_ENABLED": "false",
    }, workers=3, name="takeover")
    session = requests.Session()
    session.headers["Connection"] = "close"
    leader = None
    deadline = time.monotonic() + 20
    while leader is None and time.monotonic() < deadline:
        system = session.get(f"{server.url}/api/monitoring/metrics?category=system",
                             headers={"X-API-Key": METRICS_KEY}, timeout=10).json()["system"]
        leader = system["scheduler"]["leader"]
    assert leader is not None
    leader_pid = int(leader["holder"].split(":")[1])
    assert leader_pid in server.worker_pids()
    os.kill(leader_pid, signal.SIGKILL)
    killed_at = time.time()
    for i in range(4):  # a new breach, written by the surviving workers: 100 % of payments fail
        response = session.post(f"{server.url}/api/monitoring/events", headers={"X-API-Key": METRICS_KEY},
                                json={"type": "payment", "id": f"pi_k{i}", "outcome": "failed", "amount": 1999,
                                      "currency": "EUR", "provider": "stripe"}, timeout=10)
        assert response.status_code == 201, response.text
    (notice,) = receiver.wait_for(1, timeout=ttl + 10, path="/hook")
    assert notice.json()["commonLabels"]["alertname"] == "PaymentFailures"
    assert notice.received_at - killed_at <= ttl + 2.0, notice.received_at - killed_at


def test_sends_after_is_when_a_waiting_alert_really_arrives(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer,
) -> None:
    from datetime import datetime

    server = gunicorn_server(env={
        "METRICS_API_KEY": METRICS_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "ALERT_GROUP_WAIT": '{"high": "2s"}',  # ALERT_EVALUATION_INTERVAL stays 15 s: no evaluation sends it
        "HEALTH_CHECK_INTERVAL": "3600",
        "RATELIMIT_ENABLED": "false",
    }, workers=3, name="sends-after")
    answer = requests.post(f"{server.url}{ALERTS}", headers={"X-Admin-Key": ADMIN_KEY}, timeout=10, json={
        "action": "trigger", "severity": "high", "description": "Refund queue growing", "service": "refunds"}).json()
    due = datetime.fromisoformat(answer["sendsAfter"].replace("Z", "+00:00")).timestamp()
    (notice,) = receiver.wait_for(1, timeout=10, path="/hook")
    assert due <= notice.received_at <= due + 1.0, notice.received_at - due
