"""The composition root without Flask: the health service, the uptime service and the alerting
engine built by ``build_services`` exactly as the HTTP layer gets them, driven by the clock."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitoring.alerts.admin import Actor
from monitoring.clock import ManualClock
from monitoring.services import Services, build_services
from monitoring.settings import Settings
from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def build(tmp_path: Path, store_url: str, clock: ManualClock) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def make(env: dict[str, str] | None = None, name: str = "a") -> Services:
        settings = Settings.from_env({
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "VAR_DIR": str(tmp_path / name),
            "DATABASE_URL": store_url if name == "a" else f"sqlite:///{tmp_path / name / 'store.db'}",
            "SCHEDULER_ENABLED": "false",
            **(env or {}),
        })
        services = build_services(settings, clock)
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def test_the_composition_root_imports_no_flask(tmp_path: Path) -> None:
    """Built in a fresh interpreter: every feature, and not one Flask module loaded."""
    script = (
        "import sys, json\n"
        "from monitoring.services import build_services\n"
        "from monitoring.settings import Settings\n"
        f"settings = Settings.from_env({{'VAR_DIR': {str(tmp_path)!r}, 'SCHEDULER_ENABLED': 'false'}})\n"
        "services = build_services(settings)\n"
        "services.health.run_round()\n"
        "services.alerting.evaluate()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug'))))\n"
        "services.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_health_and_uptime_without_an_app(build: Callable[..., Services], clock: ManualClock) -> None:
    services = build()
    state = {"up": True}
    services.health.register("search", lambda: state["up"], critical=True)
    services.health.run_round()
    assert services.health.snapshot().services["search"].status == "healthy"
    clock.advance(30)
    state["up"] = False
    services.health.run_round()  # the uptime service folds the round: an incident opens
    snapshot = services.health.snapshot()
    assert snapshot.status == "unhealthy" and snapshot.services["search"].status == "unhealthy"
    clock.advance(60)
    incident = services.uptime.incidents.open_incident()
    assert incident is not None and incident.services == ("search",)
    state["up"] = True
    services.health.run_round()
    assert services.uptime.incidents.open_incident() is None
    (closed,) = services.uptime.incidents.page()
    assert closed.ended_at == clock.now() and closed.started_at == clock.now() - 60


def test_the_alerting_engine_fires_and_delivers_without_an_app(
    build: Callable[..., Services], clock: ManualClock
) -> None:
    with RecordingHTTPServer() as receiver:
        services = build({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "ALERT_GROUP_WAIT": "0"})
        for _ in range(5):
            services.business.record_payment("failed", 4500, "EUR", provider="stripe", failure_code="card_declined")
        services.business.record_payment("succeeded", 4500, "EUR", provider="stripe")
        services.alerting.evaluate()
        clock.advance(300)
        services.alerting.evaluate()
        firing = services.alerting.ledger.listing(states=("firing",), limit=10)
        assert [alert.rule for alert in firing] == ["PaymentFailures"]
        run = services.outbox.deliver_due()
        assert run.delivered == 1
        (sent,) = receiver.wait_for(1, path="/hook")
        assert sent.json()["alerts"][0]["labels"]["alertname"] == "PaymentFailures"


def test_two_centinelas_in_one_process_keep_their_own_state(
    build: Callable[..., Services], clock: ManualClock
) -> None:
    first, second = build(name="a"), build(name="b")
    first.health.register("cache", lambda: False)
    first.health.run_round()
    second.health.run_round()
    assert "cache" in first.health.snapshot().services and "cache" not in second.health.snapshot().services
    first.metrics.recorder.record("GET", "/tickets/<id>", 200, 0.01)
    assert first.metrics.flush() == 1 and second.metrics.flush() == 0
    triggered = first.alerting.trigger("high", "disk almost full", Actor("admin:test"))
    assert triggered.created and second.alerting.ledger.listing(states=("firing",), limit=10) == []
    assert first.keyring.get("metrics").secret == second.keyring.get("metrics").secret == METRICS_KEY
    assert first.scheduler is not second.scheduler and first.store is not second.store
