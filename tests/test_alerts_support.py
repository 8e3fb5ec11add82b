"""Shared pieces of the test_alerts_* files (no tests here): a host app monitored by Centinela
(routes that fail and succeed), the engine driven by the injected clock, and readers for
what the engine decided (alerts, history, outbox rows)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, abort
from sqlalchemy import select

from monitoring.alerts.engine import EvaluationRun
from monitoring.clock import ManualClock
from monitoring.extension import Monitoring
from monitoring.notify.model import Notification
from monitoring.settings import Settings
from monitoring.store.notify_tables import notify_deliveries
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer

ALERTS = "/api/monitoring/alerts"
# Most tests want an alert sent in the evaluation that fires it; the channels are real, their
# receiver is not called unless a test delivers (then it configures a RecordingHTTPServer).
QUIET = {
    "ALERT_GROUP_WAIT": "0",
    "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
    "ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/escalate",
}


@dataclass
class Host:
    """A host app (its own routes) with Monitoring(app): what a festival site runs."""

    app: Flask
    monitoring: Monitoring
    clock: ManualClock
    client: Any = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    # --- traffic and events ---------------------------------------------------------------------

    def requests(self, path: str, n: int) -> None:
        """Real requests through the test client; the middleware records them."""
        for _ in range(n):
            self.client.get(path)

    def record_durations(self, route: str, seconds: float, n: int, status: int = 200) -> None:
        """Requests whose duration we choose, through the recorder API (deterministic "slow")."""
        recorder = self.monitoring.services.metrics.recorder
        for _ in range(n):
            recorder.record("GET", route, status, seconds)

    def payments(self, succeeded: int, failed: int) -> None:
        for _ in range(succeeded):
            self.monitoring.business.record_payment("succeeded", 1999, "EUR", provider="stripe")
        for _ in range(failed):
            self.monitoring.business.record_payment("failed", 4500, "EUR", provider="stripe",
                                                    failure_code="card_declined")

    def flush(self) -> None:
        """The per-process flush job: this process's request metrics into the store."""
        self.monitoring.scheduler.run_process("metrics_flush")

    # --- the engine ---------------------------------------------------------------------------------

    def evaluate(self) -> EvaluationRun:
        """The leader's alert_evaluation job, called directly (no lease, no sleep)."""
        return self.monitoring.alerting.evaluate()  # type: ignore[attr-defined]

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def active(self, **params: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = self.client.get(f"{ALERTS}?action=active&{query}", headers=METRICS_HEADERS)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["alerts"]  # type: ignore[no-any-return]

    def rules(self) -> dict[str, dict[str, Any]]:
        response = self.client.get(f"{ALERTS}?action=rules", headers=METRICS_HEADERS)
        assert response.status_code == 200, response.get_data(as_text=True)
        return {rule["name"]: rule for rule in response.get_json()["rules"]}

    def firing(self) -> dict[str, dict[str, Any]]:
        return {a["name"]: a for a in self.active(state="firing")}

    def history(self, **params: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = self.client.get(f"{ALERTS}?action=history&{query}", headers=METRICS_HEADERS)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["alerts"]  # type: ignore[no-any-return]

    def post(self, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        response = self.client.post(ALERTS, json=body, headers=ADMIN_HEADERS)
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def outbox_rows(self, **where: str) -> list[dict[str, Any]]:
        """The outbox as stored: one row per delivery, oldest first."""
        query = select(notify_deliveries).order_by(notify_deliveries.c.id)
        for column, value in where.items():
            query = query.where(notify_deliveries.c[column] == value)
        with self.monitoring.store.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def notifications(self, event: str | None = None, channel: str = "webhook") -> list[Notification]:
        """The notifications enqueued for one channel, oldest first."""
        rows = self.outbox_rows(channel=channel, **({"event": event} if event else {}))
        return [Notification.from_json(json.loads(row["payload"])) for row in rows]

    def deliver(self) -> None:
        self.monitoring.outbox.deliver_due()  # type: ignore[attr-defined]


def names(notification: Notification) -> list[str]:
    return sorted(a.name for a in notification.alerts)


def build_host(settings: Settings, clock: ManualClock) -> Host:
    app = Flask("festival")

    @app.get("/checkout")
    def checkout() -> Any:  # the payment provider is failing: every checkout answers 500
        abort(500)

    @app.get("/tickets")
    def tickets() -> Any:
        return {"tickets": []}

    monitoring = Monitoring(app, settings=settings, clock=clock)
    return Host(app, monitoring, clock)


@pytest.fixture
def make_host(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Callable[..., Host]]:
    hosts: list[Host] = []

    def build(env: dict[str, str] | None = None) -> Host:
        host = build_host(make_settings({**QUIET, **(env or {})}), clock)
        hosts.append(host)
        return host

    yield build
    for host in hosts:
        host.monitoring.shutdown()
        host.monitoring.store.dispose()


@pytest.fixture
def receiver() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server
