"""Shared pieces of the test_notify_* files (no tests here): alerts and notifications as the
alerting engine will build them, an outbox on a real store, a Block Kit checker."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitoring.clock import ManualClock
from monitoring.notify.model import FIRING, AlertSnapshot, Notification
from monitoring.notify.outbox import Outbox
from monitoring.settings import Settings
from monitoring.store.database import Store
from tests.support.receiver import RecordingHTTPServer

START = 1_767_225_600.0  # ManualClock's start: 2026-01-01T00:00:00Z


def make_alert(
    fingerprint: str = "a1b2c3d4e5f60718",
    severity: str = "critical",
    name: str = "PaymentFailures",
    service: str = "payments",
    summary: str = "Payment failure rate 3.2% > 1%",
    status: str = FIRING,
    **annotations: str,
) -> AlertSnapshot:
    return AlertSnapshot(
        fingerprint=fingerprint,
        labels={"alertname": name, "severity": severity, "service": service},
        annotations={"summary": summary, **annotations},
        starts_at=START,
        status=status,
        ends_at=START + 600 if status != FIRING else None,
    )


def make_notification(
    id: str = "a1b2c3d4e5f60718:firing:1", event: str = FIRING, *alerts: AlertSnapshot, **kwargs: Any
) -> Notification:
    return Notification(
        id=id,
        event=event,
        alerts=alerts or (make_alert(runbook_url="https://runbooks.example/payments"),),
        group_labels=kwargs.pop("group_labels", {"service": "payments"}),
        **kwargs,
    )


def enqueue(outbox: Outbox, notification: Notification) -> list[str]:
    """What the alerting engine does: enqueue inside its own write transaction."""
    with outbox.store.write() as conn:
        return outbox.enqueue(conn, notification)


class Steady:
    """An injected 'random' that always answers the same fraction: backoff becomes predictable."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def receiver() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


def _outbox_factory(url: str, clock: ManualClock) -> Iterator[Callable[..., Outbox]]:
    stores: list[Store] = []

    def build(env: dict[str, str], rng: Callable[[], float] | None = None, **kwargs: Any) -> Outbox:
        """Each call is one process's view: its own engine on the one store."""
        store = Store(url, clock)
        store.migrate()
        stores.append(store)
        # No background work (as in every test app): rows wait for the delivery job the test runs.
        settings = Settings.from_env({"DATABASE_URL": url, "SCHEDULER_ENABLED": "false", **env})
        return Outbox.from_settings(store, clock, settings, rng=rng or Steady(), **kwargs)

    yield build
    for store in stores:
        store.dispose()


@pytest.fixture
def make_outbox(store_url: str, clock: ManualClock) -> Iterator[Callable[..., Outbox]]:
    """An outbox on a migrated store (SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""
    yield from _outbox_factory(store_url, clock)


@pytest.fixture
def make_sqlite_outbox(sqlite_url: str, clock: ManualClock) -> Iterator[Callable[..., Outbox]]:
    """The same on SQLite only: for tests about what is sent, where the store does not matter."""
    yield from _outbox_factory(sqlite_url, clock)


# --- Block Kit: the subset we send, checked against Slack's published limits ---------------------

TEXT_TYPES = {"plain_text", "mrkdwn"}


def check_text(obj: Any, limit: int, types: set[str] = TEXT_TYPES) -> None:
    assert isinstance(obj, dict) and obj.get("type") in types, obj
    assert isinstance(obj["text"], str) and 1 <= len(obj["text"]) <= limit, len(obj.get("text", ""))
    assert set(obj) <= {"type", "text", "emoji", "verbatim"}, obj


def check_block_kit(message: dict[str, Any]) -> None:
    """Raise AssertionError where ``message`` breaks Block Kit's rules for the blocks we use."""
    assert set(message) == {"text", "blocks"}
    assert isinstance(message["text"], str) and message["text"], "fallback text is required"
    blocks = message["blocks"]
    assert isinstance(blocks, list) and 1 <= len(blocks) <= 50
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert set(block) == {"type", "text"}
            check_text(block["text"], 150, {"plain_text"})
        elif kind == "section":
            assert set(block) <= {"type", "text", "fields", "accessory", "block_id"}
            assert "text" in block or "fields" in block
            if "text" in block:
                check_text(block["text"], 3000)
            for item in block.get("fields", []):
                check_text(item, 2000)
            assert len(block.get("fields", [])) <= 10
            if "accessory" in block:
                button = block["accessory"]
                assert button["type"] == "button" and set(button) <= {"type", "text", "url", "action_id", "value"}
                check_text(button["text"], 75, {"plain_text"})
                assert button["url"].startswith(("http://", "https://")) and len(button["url"]) <= 3000
        elif kind == "context":
            assert set(block) == {"type", "elements"} and 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                check_text(element, 3000)
        elif kind == "divider":
            assert set(block) == {"type"}
        else:
            raise AssertionError(f"unexpected block type {kind}")
