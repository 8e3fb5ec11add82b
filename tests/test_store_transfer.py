"""Moving from SQLite to PostgreSQL: a store full of real history (health rounds and an incident,
requests, business events, an alert, audit entries) is copied with the transfer tool, and the
service on PostgreSQL answers what it answered on SQLite, then carries on writing."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from app import create_app
from monitoring.clock import ManualClock
from monitoring.settings import Settings
from monitoring.store.database import Store
from monitoring.store.transfer import TargetNotEmpty, copy_store
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS, _postgres_schema_url
from tests.support.gunicorn import PROJECT_ROOT
from tests.test_one_truth_gunicorn import flatten

READS = ("/api/monitoring/uptime", "/api/monitoring/uptime/incidents", "/api/monitoring/metrics?window=1h",
         "/api/monitoring/alerts?action=history", "/api/monitoring/audit")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: the move to PostgreSQL needs one")
    yield from _postgres_schema_url(base)


def answers(app: Any) -> dict[str, Any]:
    client = app.test_client()
    found = {}
    for path in READS:
        response = client.get(path, headers={**METRICS_HEADERS, **ADMIN_HEADERS})
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        found[path] = response.get_json()
    return found


def history(app: Any, clock: ManualClock) -> None:
    monitoring = app.extensions["centinela"]
    client = app.test_client()
    up = {"value": True}
    monitoring.health.register("shop", lambda: up["value"], critical=True)
    for minute in range(6):
        up["value"] = minute not in (2, 3)
        monitoring.health.run_round()
        for i in range(5):
            client.get(f"/tickets/{i}")
        clock.advance(60)
    assert client.post("/api/monitoring/events", headers=METRICS_HEADERS, json={"events": [
        {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR"},
        {"type": "ticket", "operation": "purchased", "quantity": 2}]}).status_code == 201
    assert client.post("/api/monitoring/alerts", headers=ADMIN_HEADERS, json={
        "action": "trigger", "severity": "low", "service": "moved", "description": "made before the move"}
    ).status_code in (200, 201)
    monitoring.scheduler.run_process("metrics_flush")


def test_a_sqlite_store_moves_to_postgresql_and_answers_the_same(
        make_settings: Callable[..., Settings], clock: ManualClock, sqlite_url: str, postgres_url: str) -> None:
    before = create_app(make_settings({"HEALTH_CHECK_INTERVAL": "60"}), clock=clock)
    history(before, clock)
    expected = answers(before)
    before.extensions["centinela"].shutdown()
    before.extensions["centinela"].store.dispose()

    copied = copy_store(Store(sqlite_url), Store(postgres_url))
    assert copied["health_results"] >= 12 and copied["incidents"] == 1 and copied["payment_events"] == 1

    after = create_app(make_settings({"HEALTH_CHECK_INTERVAL": "60", "DATABASE_URL": postgres_url}), clock=clock)
    after.extensions["centinela"].health.register("shop", lambda: True, critical=True)  # configuration, not data
    try:
        moved = answers(after)
        # The audit trail also records this test's own reads of it; everything else is the same.
        expected.pop("/api/monitoring/audit"), moved.pop("/api/monitoring/audit")
        now = dict(flatten(moved))
        assert moved == expected, {path: (was, now.get(path)) for path, was in flatten(expected) if now.get(path) != was}
        # It carries on: new rows get new ids (the sequences moved past the copied ones).
        after.extensions["centinela"].health.run_round()
        response = after.test_client().post("/api/monitoring/alerts", headers=ADMIN_HEADERS, json={
            "action": "trigger", "severity": "low", "service": "after", "description": "made after the move"})
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        listed = after.test_client().get("/api/monitoring/alerts?action=history", headers=METRICS_HEADERS).get_json()
        assert {a["labels"].get("service") for a in listed["alerts"]} >= {"moved", "after"}
    finally:
        after.extensions["centinela"].shutdown()
        after.extensions["centinela"].store.dispose()

    with pytest.raises(TargetNotEmpty):  # never into a store in use
        copy_store(Store(sqlite_url), Store(postgres_url))


def test_the_command_refuses_a_target_in_use_with_one_line(sqlite_url: str, tmp_path: Any) -> None:
    source = Store(sqlite_url)
    source.migrate()
    source.ping()
    with source.write() as conn:  # one instance row: a store that has been used
        conn.execute(text("INSERT INTO instances (instance_id, zone, hostname, pid, started_at, last_seen) "
                          "VALUES ('h:1:a', 'eu', 'h', 1, 1.0, 2.0)"))
    source.dispose()
    target = f"sqlite:///{tmp_path / 'target.db'}"
    command = [sys.executable, "-m", "monitoring.store.transfer", sqlite_url, target]
    first = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and first.stdout.startswith("centinela: copied "), first.stderr
    again = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stderr.startswith("centinela: the target already has rows in ")
