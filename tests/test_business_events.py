"""Business events through the Python API and POST /api/monitoring/events: validation,
idempotent ids, all-or-nothing batches, keys and limits."""
from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text

from app import create_app
from monitoring.business import InvalidEvents, RecordResult
from monitoring.business.events import MAX_BATCH, UserIdHasher
from monitoring.clock import ManualClock
from monitoring.extension import Monitoring
from monitoring.settings import Settings
from monitoring.store.business_tables import business_totals, payment_events, ticket_events, user_activity_events
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS, METRICS_KEY

EVENTS = "/api/monitoring/events"
PAYMENT = {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR", "provider": "stripe"}
TICKET = {"type": "ticket", "operation": "purchased", "ticket_type": "weekend-pass", "quantity": 2}
ACTIVITY = {"type": "user_activity", "user_id": "jane.doe@example.com", "action": "login"}


def rows(monitoring: Any, table: Any) -> list[Any]:
    with monitoring.store.read() as conn:
        return conn.execute(select(table).order_by(table.c.id)).all()


def stored_counts(monitoring: Any) -> tuple[int, int, int]:
    with monitoring.store.read() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (payment_events, ticket_events, user_activity_events)
        )


def post(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(EVENTS, json=body, headers=METRICS_HEADERS if headers is None else headers)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture
def store_app(store_url: str, make_settings: Callable[..., Settings], clock: ManualClock) -> Any:
    """The app on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""
    application = create_app(make_settings({"DATABASE_URL": store_url}), clock=clock)
    yield application
    application.extensions["centinela"].shutdown()
    application.extensions["centinela"].store.dispose()


# --- the Python API --------------------------------------------------------------------------


def test_python_api_records_each_kind(app: Any, monitoring: Any, clock: ManualClock) -> None:
    with app.test_request_context("/checkout"):
        assert monitoring.business.record_payment("succeeded", 1999, "EUR", provider="stripe", event_id="pi_1") == RecordResult(1, 0)
        assert monitoring.business.record_payment("failed", 500, "usd", failure_code="card_declined") == RecordResult(1, 0)
        assert monitoring.business.record_ticket("purchased", ticket_type="weekend-pass", quantity=3) == RecordResult(1, 0)
        assert monitoring.business.record_user_activity(42, "login") == RecordResult(1, 0)
    succeeded, failed = rows(monitoring, payment_events)
    assert (succeeded.outcome, succeeded.amount_minor, succeeded.currency, succeeded.provider, succeeded.event_id) == (
        "succeeded", 1999, "EUR", "stripe", "pi_1")
    assert (failed.currency, failed.failure_code, failed.at) == ("USD", "card_declined", clock.now())
    (ticket,) = rows(monitoring, ticket_events)
    assert (ticket.operation, ticket.ticket_type, ticket.quantity) == ("purchased", "weekend-pass", 3)
    (activity,) = rows(monitoring, user_activity_events)
    assert activity.action == "login" and len(activity.user_hash) == 64 and activity.user_hash != "42"


def test_python_api_repeated_event_id_is_a_duplicate_not_an_error(app: Any, monitoring: Any) -> None:
    with app.app_context():
        assert monitoring.business.record_payment("succeeded", 1000, "EUR", event_id="pi_retry") == RecordResult(1, 0)
        assert monitoring.business.record_payment("succeeded", 1000, "EUR", event_id="pi_retry") == RecordResult(0, 1)
    assert len(rows(monitoring, payment_events)) == 1


def test_python_api_raises_on_bad_values_and_stores_nothing(app: Any, monitoring: Any) -> None:
    with app.app_context():
        with pytest.raises(InvalidEvents) as raised:
            monitoring.business.record_payment("succeeded", 19.99, "EUR")  # type: ignore[arg-type]
        assert [(e.field, e.index) for e in raised.value.errors] == [("amount", 0)]
        assert "amount" in str(raised.value)
        with pytest.raises(InvalidEvents):
            monitoring.business.record_ticket("lost")
        with pytest.raises(InvalidEvents):
            monitoring.business.record_user_activity("", "login")
        with pytest.raises(InvalidEvents):
            monitoring.business.record_payment("succeeded", 100, "EUR", timestamp=datetime(2026, 1, 1))  # naive: which zone?
        with pytest.raises(InvalidEvents):
            monitoring.business.record_payment("succeeded", 100, "EUR", timestamp=float("nan"))
    assert stored_counts(monitoring) == (0, 0, 0)


def test_python_api_timestamps_as_datetime_or_epoch(app: Any, monitoring: Any, clock: ManualClock) -> None:
    earlier = datetime.fromtimestamp(clock.now(), tz=UTC) - timedelta(hours=2)
    with app.app_context():
        monitoring.business.record_payment("succeeded", 100, "EUR", timestamp=earlier)
        monitoring.business.record_payment("succeeded", 100, "EUR", timestamp=clock.now() - 60)
    assert [r.at for r in rows(monitoring, payment_events)] == [clock.now() - 7200, clock.now() - 60]


def test_python_api_needs_no_app_context(app: Any, monitoring: Any) -> None:
    """A worker process or a script records through the extension object, no request needed."""
    assert monitoring.business.record_payment("succeeded", 100, "EUR") == RecordResult(1, 0)
    assert monitoring.business.record_ticket("scanned") == RecordResult(1, 0)
    assert stored_counts(monitoring) == (1, 1, 0)


def test_two_apps_in_one_process_record_into_their_own_stores(
    make_settings: Callable[..., Settings], tmp_path: Path, clock: ManualClock
) -> None:
    first = create_app(make_settings(), clock=clock)
    second = create_app(make_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"}), clock=clock)
    Monitoring.of(second).business.record_ticket("validated")
    assert stored_counts(second.extensions["centinela"]) == (0, 1, 0)
    assert stored_counts(first.extensions["centinela"]) == (0, 0, 0)


# --- user ids are stored only as a keyed hash ---------------------------------------------------


def test_user_id_is_never_stored_only_its_keyed_hash(
    make_settings: Callable[..., Settings], tmp_path: Path, clock: ManualClock
) -> None:
    db = tmp_path / "hash.db"
    app = create_app(make_settings({"DATABASE_URL": f"sqlite:///{db}", "USER_ID_HASH_KEY": "k" * 32}), clock=clock)
    response = post(app.test_client(), {"events": [ACTIVITY, {**ACTIVITY, "user_id": 4111}]})
    assert response.status_code == 201
    monitoring = app.extensions["centinela"]
    hashes = [r.user_hash for r in rows(monitoring, user_activity_events)]
    assert hashes == [UserIdHasher("k" * 32).hash("jane.doe@example.com"), UserIdHasher("k" * 32).hash("4111")]
    assert hashes[0] != UserIdHasher("another key").hash("jane.doe@example.com")
    monitoring.store.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("hash.db*"))
    assert b"jane.doe" not in raw and b"example.com" not in raw


def test_hash_key_is_generated_once_into_var_dir_and_kept(make_settings: Callable[..., Settings],
                                                          clock: ManualClock) -> None:
    settings = make_settings()
    first = create_app(settings, clock=clock)
    key_file = Path(settings.var_dir) / "user-id-hash-key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    Monitoring.of(first).business.record_user_activity("u-1", "login")
    # A restart (a new process) reads the same key: the same user keeps the same hash.
    second = create_app(settings, clock=clock)
    Monitoring.of(second).business.record_user_activity("u-1", "login")
    assert len({r.user_hash for r in rows(second.extensions["centinela"], user_activity_events)}) == 1
    assert "UserIdHasher(key=[redacted])" == repr(Monitoring.of(second).business.recorder.hasher)


# --- the endpoint: good requests ---------------------------------------------------------------


def test_single_event_is_201_with_counts(client: Any, monitoring: Any) -> None:
    response = post(client, PAYMENT)
    assert response.status_code == 201
    assert response.get_json() == {"accepted": 1, "duplicates": 0}
    assert stored_counts(monitoring) == (1, 0, 0)


def test_batch_of_every_kind(client: Any, monitoring: Any, clock: ManualClock) -> None:
    response = post(client, {"events": [PAYMENT, TICKET, ACTIVITY, {**PAYMENT, "outcome": "failed",
                                                                    "failure_code": "card_declined"}]})
    assert response.status_code == 201
    assert response.get_json() == {"accepted": 4, "duplicates": 0}
    assert stored_counts(monitoring) == (2, 1, 1)


def test_admin_key_and_query_key_are_accepted(client: Any) -> None:
    assert post(client, PAYMENT, ADMIN_HEADERS).status_code == 201
    assert client.post(f"{EVENTS}?api_key={METRICS_KEY}", json=TICKET).status_code == 201


def test_repeated_ids_are_ignored_and_reported(client: Any, monitoring: Any) -> None:
    first = {**PAYMENT, "id": "evt_1"}
    assert post(client, first).get_json() == {"accepted": 1, "duplicates": 0}
    retry = post(client, first)
    assert retry.status_code == 200 and retry.get_json() == {"accepted": 0, "duplicates": 1}
    mixed = post(client, {"events": [first, {**TICKET, "id": "evt_2"}, {**TICKET, "id": "evt_2"}, TICKET]})
    assert mixed.status_code == 201 and mixed.get_json() == {"accepted": 2, "duplicates": 2}
    assert stored_counts(monitoring) == (1, 2, 0)
    # Totals (the Prometheus counters) count each event once, whatever the retries.
    with monitoring.store.read() as conn:
        totals = {(r.name, r.label): r.value for r in conn.execute(select(business_totals))}
    assert totals[("payments", "succeeded")] == 1 and totals[("revenue_minor_units", "EUR")] == 1999
    assert totals[("ticket_operations", "purchased")] == 2 and totals[("tickets", "purchased")] == 4


def test_labels_pass_the_sanitiser_before_they_are_stored(client: Any, monitoring: Any) -> None:
    response = post(client, {**PAYMENT, "provider": "stripe 4242 4242 4242 4242"})
    assert response.status_code == 201
    assert rows(monitoring, payment_events)[0].provider == "stripe [card ****4242]"


def test_timestamps(client: Any, monitoring: Any, clock: ManualClock) -> None:
    assert post(client, {**TICKET, "timestamp": "2025-12-31T23:00:00Z"}).status_code == 201
    assert post(client, {**TICKET, "timestamp": "2026-01-01T01:00:00+02:00"}).status_code == 201
    assert post(client, {**TICKET, "timestamp": "2026-01-01T00:04:00Z"}).status_code == 201  # a little ahead: ok
    assert [r.at for r in rows(monitoring, ticket_events)] == [clock.now() - 3600, clock.now() - 3600,
                                                               clock.now() + 240]


# --- the endpoint: bad requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    "event, field",
    [
        ({**PAYMENT, "amount": "1999"}, "amount"),
        ({**PAYMENT, "amount": 19.99}, "amount"),
        ({**PAYMENT, "amount": 1999.0}, "amount"),
        ({**PAYMENT, "amount": -1}, "amount"),
        ({**PAYMENT, "amount": True}, "amount"),
        ({**PAYMENT, "amount": 10**16}, "amount"),
        ({k: v for k, v in PAYMENT.items() if k != "amount"}, "amount"),
        ({**PAYMENT, "currency": "EURO"}, "currency"),
        ({**PAYMENT, "currency": "XYZ"}, "currency"),
        ({**PAYMENT, "currency": 978}, "currency"),
        ({k: v for k, v in PAYMENT.items() if k != "currency"}, "currency"),
        ({**PAYMENT, "outcome": "ok"}, "outcome"),
        ({**PAYMENT, "outcome": None}, "outcome"),
        ({**PAYMENT, "failure_code": "card_declined"}, "failure_code"),  # on a succeeded payment
        ({**PAYMENT, "provider": ""}, "provider"),
        ({**PAYMENT, "provider": "x" * 65}, "provider"),
        ({**PAYMENT, "provider": "stripe\ninjected"}, "provider"),
        ({**PAYMENT, "provider": 7}, "provider"),
        ({**PAYMENT, "amount_cents": 1}, "amount_cents"),
        ({**TICKET, "operation": "lost"}, "operation"),
        ({**TICKET, "quantity": 0}, "quantity"),
        ({**TICKET, "quantity": 1.5}, "quantity"),
        ({**TICKET, "quantity": 10_001}, "quantity"),
        ({**TICKET, "ticket_type": ["vip"]}, "ticket_type"),
        ({**ACTIVITY, "user_id": ""}, "user_id"),
        ({**ACTIVITY, "user_id": None}, "user_id"),
        ({**ACTIVITY, "user_id": ["u"]}, "user_id"),
        ({**ACTIVITY, "user_id": False}, "user_id"),
        ({**ACTIVITY, "user_id": "u" * 257}, "user_id"),
        ({k: v for k, v in ACTIVITY.items() if k != "action"}, "action"),
        ({**PAYMENT, "timestamp": "yesterday"}, "timestamp"),
        ({**PAYMENT, "timestamp": 1767225600}, "timestamp"),
        ({**PAYMENT, "timestamp": "2026-01-01T00:00:00"}, "timestamp"),  # no offset
        ({**PAYMENT, "timestamp": "2026-01-01T00:10:00Z"}, "timestamp"),  # 10 minutes ahead
        ({**PAYMENT, "timestamp": "2025-11-01T00:00:00Z"}, "timestamp"),  # older than the 30-day retention
        ({**PAYMENT, "timestamp": "2026-13-01T00:00:00Z"}, "timestamp"),
        ({**PAYMENT, "id": "has space"}, "id"),
        ({**PAYMENT, "id": "x" * 129}, "id"),
        ({**PAYMENT, "id": 17}, "id"),
        ({**PAYMENT, "id": "4242424242424242"}, "id"),  # a card number is not an id we keep
        ({"outcome": "succeeded", "amount": 1, "currency": "EUR"}, "type"),
        ({**PAYMENT, "type": "refund"}, "type"),
        ("payment", None),
        (None, None),
    ],
)
def test_each_bad_field_is_400_and_named(client: Any, monitoring: Any, event: Any, field: str | None) -> None:
    response = post(client, {"events": [TICKET, event]})
    error = assert_error(response, 400, "invalid_events")
    assert [(item["index"], item["field"]) for item in error["items"]] == [(1, field)]
    assert error["items"][0]["message"]
    assert stored_counts(monitoring) == (0, 0, 0)  # the good event of the batch was not stored either


def test_every_bad_item_is_listed(client: Any, monitoring: Any) -> None:
    events = [PAYMENT] * 3 + [{**PAYMENT, "amount": -5, "currency": "eur!"}] + [PAYMENT] + [{"type": "ticket"}]
    error = assert_error(post(client, {"events": events}), 400, "invalid_events")
    assert [(i["index"], i["field"]) for i in error["items"]] == [(3, "amount"), (3, "currency"), (5, "operation")]
    assert error["message"] == "3 problems in the events; nothing was stored"
    assert stored_counts(monitoring) == (0, 0, 0)


def test_single_bad_event_is_reported_at_index_0(client: Any) -> None:
    error = assert_error(post(client, {**PAYMENT, "amount": "lots"}), 400, "invalid_events")
    assert error["items"] == [{"index": 0, "field": "amount",
                               "message": "must be a whole number from 0 to 1000000000000000"}]


@pytest.mark.parametrize(
    "body, code",
    [
        ([PAYMENT], "invalid_body"),
        ("payment", "invalid_body"),
        ({"events": PAYMENT}, "invalid_body"),
        ({"events": []}, "invalid_body"),
        ({"events": [PAYMENT], "source": "shop"}, "invalid_body"),
    ],
)
def test_bodies_of_the_wrong_shape_are_400(client: Any, body: Any, code: str) -> None:
    assert_error(post(client, body), 400, code)


def test_malformed_json_and_wrong_content_type(client: Any) -> None:
    bad = client.post(EVENTS, data='{"type": "payment",', content_type="application/json", headers=METRICS_HEADERS)
    assert_error(bad, 400, "invalid_json")
    form = client.post(EVENTS, data="type=payment", content_type="application/x-www-form-urlencoded",
                       headers=METRICS_HEADERS)
    assert_error(form, 415, "unsupported_media_type")


def test_oversize_batch_is_413_and_stores_nothing(client: Any, monitoring: Any) -> None:
    error = assert_error(post(client, {"events": [TICKET] * (MAX_BATCH + 1)}), 413, "batch_too_large")
    assert str(MAX_BATCH) in error["message"]
    assert stored_counts(monitoring) == (0, 0, 0)
    assert post(client, {"events": [TICKET] * MAX_BATCH}).get_json() == {"accepted": MAX_BATCH, "duplicates": 0}


def test_huge_body_is_413(client: Any, monitoring: Any) -> None:
    body = {"events": [{**TICKET, "ticket_type": "x" * 60}] * 20_000}  # about 1.6 MB, over MAX_BODY_BYTES
    assert_error(post(client, body), 413, "payload_too_large")
    assert stored_counts(monitoring) == (0, 0, 0)


def test_missing_or_wrong_key_is_401_and_stores_nothing(client: Any, monitoring: Any) -> None:
    assert_error(post(client, PAYMENT, headers={}), 401, "unauthorized")
    assert_error(post(client, PAYMENT, headers={"X-API-Key": "not-the-key"}), 401, "unauthorized")
    assert stored_counts(monitoring) == (0, 0, 0)


def test_events_have_their_own_rate_limit_per_key(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings({"RATELIMIT_EVENTS": "2/minute"}))
    client = app.test_client()
    assert [post(client, TICKET).status_code for _ in range(3)] == [201, 201, 429]
    assert_error(post(client, TICKET), 429, "rate_limited")
    assert post(client, TICKET, ADMIN_HEADERS).status_code == 201  # another key, another budget


# --- the store: on SQLite and PostgreSQL --------------------------------------------------------


def test_batch_is_all_or_nothing_when_the_store_fails_midway(store_app: Any) -> None:
    monitoring = store_app.extensions["centinela"]
    with monitoring.store.write() as conn:  # a real failure for the second table of the batch
        conn.execute(text("DROP TABLE ticket_events"))
    response = post(store_app.test_client(), {"events": [PAYMENT, TICKET]})
    assert response.status_code == 500
    with monitoring.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(payment_events)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(business_totals)).scalar_one() == 0


def test_concurrent_retries_of_one_id_store_it_once(store_app: Any) -> None:
    monitoring = store_app.extensions["centinela"]
    recorder = monitoring.business.recorder
    results: list[RecordResult] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        results.append(recorder.record_raw([{**PAYMENT, "id": "evt_race"}, {**TICKET, "id": "evt_race_t"}]))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.accepted for r in results) == 2 and sum(r.duplicates for r in results) == 10
    assert stored_counts(monitoring) == (1, 1, 0)
    with monitoring.store.read() as conn:
        assert conn.execute(
            select(business_totals.c.value).where(business_totals.c.name == "payments")
        ).scalar_one() == 1


def test_retention_purges_old_events(store_app: Any, clock: ManualClock) -> None:
    monitoring = store_app.extensions["centinela"]
    client = store_app.test_client()
    assert post(client, {"events": [PAYMENT, TICKET, ACTIVITY]}).status_code == 201
    clock.advance(29 * 86400)
    assert post(client, {"events": [PAYMENT, TICKET, ACTIVITY]}).status_code == 201
    clock.advance(2 * 86400)
    removed = monitoring.services.purge_expired()
    assert (removed["payment_events"], removed["ticket_events"], removed["user_activity_events"]) == (1, 1, 1)
    assert stored_counts(monitoring) == (1, 1, 1)
    with monitoring.store.read() as conn:  # the all-time totals are not purged
        assert conn.execute(
            select(business_totals.c.value).where(business_totals.c.name == "payments")
        ).scalar_one() == 2


# --- a real gunicorn with several workers ------------------------------------------------------


@pytest.mark.slow
def test_every_worker_reports_the_same_business_figures(gunicorn_server: Callable[..., Any]) -> None:
    server = gunicorn_server(env={"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": "gunicorn-admin-key-0123456789"},
                             workers=3)
    batch = {"events": [PAYMENT, {**PAYMENT, "outcome": "failed", "amount": 700}, ACTIVITY]}
    for index in range(10):  # spread over the workers; each retry of an id is ignored by whichever answers
        for attempt in range(2):
            answer = requests.post(f"{server.url}{EVENTS}", json={"events": [{**TICKET, "id": f"t-{index}"}]},
                                   headers=METRICS_HEADERS, timeout=5)
            assert answer.status_code == (201 if attempt == 0 else 200)
    assert requests.post(f"{server.url}{EVENTS}", json=batch, headers=METRICS_HEADERS, timeout=5).status_code == 201
    seen = set()
    for _ in range(15):
        body = requests.get(f"{server.url}/api/monitoring/metrics?category=business&window=5m",
                            headers=METRICS_HEADERS, timeout=5).json()["business"]
        seen.add((body["payments.success_rate"], body["tickets.operations"]["purchased"]["tickets"],
                  body["users.active"]["5m"], json.dumps(body["revenue"], sort_keys=True)))
    assert seen == {(50.0, 20, 1, '[{"amount": "19.99", "currency": "EUR", "minorUnits": 1999, "payments": 1}]')}


@pytest.mark.slow
def test_a_bad_sentry_dsn_stops_gunicorn_with_one_line(gunicorn_server: Callable[..., Any]) -> None:
    with pytest.raises(RuntimeError) as raised:
        gunicorn_server(env={"SENTRY_DSN": "not-a-dsn"}, workers=1)
    assert "centinela: configuration error: SENTRY_DSN=(hidden): expected a Sentry DSN" in str(raised.value)
    assert "not-a-dsn" not in str(raised.value)
