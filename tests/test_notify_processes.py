"""With real gunicorn processes: a notification survives SIGKILL and arrives exactly once, a
send cut off mid-flight is repeated under the same idempotency key, and with `-w 3` one
notification is delivered once.

The alert "fires" through the path the alerting engine uses: ``outbox.enqueue(conn, ...)``
inside a ``store.write()`` transaction, here from the test process on the shared store.
These are real processes, so the test polls with deadlines; it never sleeps to wait for a
scheduler tick it could drive itself.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitoring.notify.outbox import DELIVERED, Delivery, Outbox
from monitoring.settings import Settings
from monitoring.store.database import Store
from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer
from tests.test_notify_support import enqueue, make_notification, receiver  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def shared(tmp_path: Path, receiver: RecordingHTTPServer) -> Iterator[dict[str, str]]:
    """One VAR_DIR and store for every gunicorn the test starts, and the receiver as the webhook."""
    var = tmp_path / "shared-var"
    yield {
        "METRICS_API_KEY": METRICS_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'centinela.db'}",
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "LEASE_TTL": "2",
        "NOTIFY_DELIVERY_INTERVAL": "0.25",
        "NOTIFY_TIMEOUT": "1",
        "NOTIFY_BACKOFF_BASE": "0.2",
        "NOTIFY_BACKOFF_MAX": "0.5",
        "HEALTH_CHECK_INTERVAL": "3600",
    }


@pytest.fixture
def engine_outbox(shared: dict[str, str]) -> Iterator[Outbox]:
    """The alerting engine's side, in this process: an outbox on the shared store, configured
    like the servers (the test may add to ``shared`` before first using it)."""
    store = Store(shared["DATABASE_URL"])
    store.migrate()
    yield Outbox.from_settings(store, store.clock, Settings.from_env(shared))
    store.dispose()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)  # polling real processes
    raise AssertionError(f"{what}: not within {timeout}s")


def delivery(outbox: Outbox, key: str) -> Delivery:
    found = outbox.find(key)
    assert found is not None
    return found


def test_a_notification_survives_sigkill_and_arrives_exactly_once(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer, shared: dict[str, str], engine_outbox: Outbox
) -> None:
    receiver.refuse()  # the receiver is down
    first = gunicorn_server(env=shared, workers=2, name="first")
    (key,) = enqueue(engine_outbox, make_notification())  # an alert fires
    wait_until(lambda: delivery(engine_outbox, key).attempts >= 2, 20, "gunicorn tried the refused receiver")
    first.kill()  # SIGKILL: no clean shutdown, no lease release
    tried = delivery(engine_outbox, key)
    assert tried.status != DELIVERED and tried.last_error.startswith("connection failed")

    receiver.resume()
    gunicorn_server(env=shared, workers=2, name="second")  # same VAR_DIR and store
    (request,) = receiver.wait_for(1, timeout=30)
    assert request.header("Idempotency-Key") == key
    wait_until(lambda: delivery(engine_outbox, key).status == DELIVERED, 10, "delivery recorded")
    time.sleep(2)  # eight more delivery intervals: nothing else may arrive
    assert [r.header("Idempotency-Key") for r in receiver.requests] == [key]


def test_a_send_cut_off_by_sigkill_is_repeated_with_the_same_idempotency_key(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer, shared: dict[str, str], engine_outbox: Outbox
) -> None:
    # Long enough that the send is still in flight when the kill comes, on a loaded machine too
    # (with 3 s, a CI run once found the send already timed out and the row back to pending); a
    # claim lasts 2 × 10 + 5 = 25 s.
    env = {**shared, "NOTIFY_TIMEOUT": "10"}
    receiver.hang(30)  # the receiver takes the request and never answers
    first = gunicorn_server(env=env, workers=2, name="first")
    (key,) = enqueue(engine_outbox, make_notification())
    receiver.wait_for(1, timeout=20)
    first.kill()  # mid-send: the row is left claimed ("sending")
    assert delivery(engine_outbox, key).status == "sending"

    receiver.respond(200)  # back to normal
    gunicorn_server(env=env, workers=2, name="second")
    wait_until(lambda: delivery(engine_outbox, key).status == DELIVERED, 45, "redelivered after the claim expired")
    time.sleep(1)
    keys = [r.header("Idempotency-Key") for r in receiver.requests]
    # At least once, and one idempotency key: a receiver that dedups on it acts exactly once.
    assert len(keys) >= 2 and set(keys) == {key}
    assert len({r.body for r in receiver.requests}) == 1


def test_with_three_workers_one_notification_is_delivered_once(
    gunicorn_server: Callable[..., Any], receiver: RecordingHTTPServer, shared: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    shared["SLACK_WEBHOOK_URL"] = receiver.url + "/slack"
    engine_outbox: Outbox = request.getfixturevalue("engine_outbox")
    server = gunicorn_server(env=shared, workers=3, name="three")
    assert len(server.worker_pids()) == 3
    keys = enqueue(engine_outbox, make_notification())
    assert len(keys) == 2  # webhook and slack
    receiver.wait_for(2, timeout=20)
    wait_until(lambda: all(delivery(engine_outbox, k).status == DELIVERED for k in keys), 10, "both recorded")
    time.sleep(2)  # eight more intervals in each of three workers
    assert sorted(r.header("Idempotency-Key") for r in receiver.requests) == sorted(keys)
    assert sorted(r.path for r in receiver.requests) == ["/hook", "/slack"]
