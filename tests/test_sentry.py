"""Sentry, against a real local HTTP server standing in for Sentry's ingest: an exception in a
route arrives with no e-mail, card number, key or full IP in it; tracing only when asked for;
a missing or hanging Sentry never breaks a request."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from flask import Flask

from app import create_app
from monitoring.clock import ManualClock
from monitoring.errors.sentry import SentryOptions, init_sentry, scrub_breadcrumb, scrub_event, sentry_active, shutdown_sentry
from monitoring.settings import ConfigError, Settings
from tests.conftest import METRICS_KEY
from tests.support.receiver import RecordedRequest, RecordingHTTPServer, free_port

ENVELOPE_PATH = "/api/1/envelope/"
STRIPE_KEY = "sk_live_51HxYzAbCdEfGhIjKlMnOpQr"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"
SECRETS = (
    "jane.doe@example.com",
    "4242 4242 4242 4242",
    "4242424242424242",
    STRIPE_KEY,
    BEARER,
    METRICS_KEY,
    "203.0.113.77",
    "198.51.100.23",
    "s3ss10n-c00k1e",
    "hunter2",
)

log = logging.getLogger("festival.checkout")


class PaymentDeclined(Exception):
    pass


def add_routes(app: Flask) -> None:
    @app.post("/checkout/<int:order_id>")
    def checkout(order_id: int) -> Any:
        customer_email = "jane.doe@example.com"  # noqa: F841 - local variables travel in Sentry events
        pan = 4242424242424242  # noqa: F841
        api_key = STRIPE_KEY  # noqa: F841
        client_ip = "203.0.113.77"
        log.warning("charging %s from %s", customer_email, client_ip)  # becomes a breadcrumb
        raise PaymentDeclined(f"card 4242 4242 4242 4242 of {customer_email} declined, key {STRIPE_KEY}")

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"ticket": ticket_id}


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Sentry's envelope format: a JSON header line, then items (a JSON header line and a payload
    of ``length`` bytes, or up to the next newline when the header gives no length)."""
    header_line, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            payload, rest = rest[: item_header["length"]], rest[item_header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return json.loads(header_line), items


def items_of_type(requests: list[RecordedRequest], kind: str) -> list[dict[str, Any]]:
    found = []
    for recorded in requests:
        if recorded.path != ENVELOPE_PATH:
            continue
        _header, items = parse_envelope(recorded.decoded_body)
        found += [json.loads(payload) for item_header, payload in items if item_header.get("type") == kind]
    return found


@pytest.fixture
def ingest() -> Iterator[RecordingHTTPServer]:
    server = RecordingHTTPServer().start()
    yield server
    shutdown_sentry(timeout=0.5)  # sentry-sdk's client is process-wide: no test leaves it on
    server.stop()


@pytest.fixture
def sentry_app(
    ingest: RecordingHTTPServer, make_settings: Callable[..., Settings], clock: ManualClock
) -> Callable[..., Flask]:
    started: list[Flask] = []

    def start(**env: str) -> Flask:
        settings = make_settings({
            "SENTRY_DSN": f"http://publickey@127.0.0.1:{ingest.port}/1",
            "SENTRY_ENVIRONMENT": "festival-test",
            "SENTRY_RELEASE": "centinela@9.9.9",
            "TRUSTED_PROXIES": "1",
            **env,
        })
        app = create_app(settings, clock=clock)
        add_routes(app)
        started.append(app)
        return app

    yield start  # type: ignore[misc]
    for app in started:
        app.extensions["centinela"].shutdown()
        app.extensions["centinela"].store.dispose()


def send_checkout(app: Flask) -> Any:
    return app.test_client().post(
        f"/checkout/17?email=jane.doe@example.com&api_key={METRICS_KEY}",
        json={"email": "jane.doe@example.com", "card": "4242 4242 4242 4242", "password": "hunter2"},
        headers={
            "X-API-Key": METRICS_KEY,
            "Authorization": f"Bearer {BEARER}",
            "Cookie": "session=s3ss10n-c00k1e",
            "X-Forwarded-For": "198.51.100.23",
            "User-Agent": "festival-app/1.0 (contact jane.doe@example.com)",
        },
    )


def test_an_exception_in_a_route_arrives_without_pii(sentry_app: Callable[..., Flask],
                                                     ingest: RecordingHTTPServer) -> None:
    app = sentry_app()
    response = send_checkout(app)
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    sentry_sdk.flush(timeout=5)
    received = ingest.wait_for(1, path=ENVELOPE_PATH)

    events = items_of_type(received, "event")
    assert len(events) == 1  # one error, one Sentry event (the error log line is not sent again)
    (event,) = events
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "PaymentDeclined"
    assert exception["mechanism"]["type"] == "flask" and exception["mechanism"]["handled"] is False
    assert (event["environment"], event["release"]) == ("festival-test", "centinela@9.9.9")
    assert event["transaction"] == "/checkout/<int:order_id>"  # the URL rule, never the raw path

    wire = "".join(r.text for r in received)
    for secret in SECRETS:
        assert secret not in wire, secret
    assert "[card ****4242]" in exception["value"] and "[email]" in exception["value"]
    assert "sk_live_[redacted]" in exception["value"]
    frame_vars = exception["stacktrace"]["frames"][-1]["vars"]
    assert frame_vars["api_key"] == "[redacted]" and frame_vars["pan"] == "[card ****4242]"
    assert "[email]" in frame_vars["customer_email"] and frame_vars["client_ip"] == "'203.0.113.0'"
    crumbs = [c["message"] for c in event["breadcrumbs"]["values"] if c.get("category") == "festival.checkout"]
    assert crumbs == ["charging [email] from 203.0.113.0"]


def test_our_own_error_tracking_sees_the_same_exception(sentry_app: Callable[..., Flask]) -> None:
    app = sentry_app()
    send_checkout(app)
    assert app.extensions["centinela"].errors.flush() == 1


def test_transactions_are_sent_sanitised_when_tracing_is_on(sentry_app: Callable[..., Flask],
                                                            ingest: RecordingHTTPServer) -> None:
    app = sentry_app(SENTRY_TRACES_SAMPLE_RATE="1.0")
    response = app.test_client().get("/tickets/5?email=jane.doe@example.com&from=203.0.113.77",
                                     headers={"X-API-Key": METRICS_KEY})
    assert response.status_code == 200
    sentry_sdk.flush(timeout=5)
    received = ingest.wait_for(1, path=ENVELOPE_PATH)
    (transaction,) = items_of_type(received, "transaction")
    assert transaction["transaction"] == "/tickets/<int:ticket_id>"
    assert transaction["contexts"]["trace"]["op"] == "http.server"
    wire = "".join(r.text for r in received)
    for secret in SECRETS:
        assert secret not in wire, secret
    assert "[email]" in transaction["request"]["query_string"]


def test_tracing_is_off_by_default(sentry_app: Callable[..., Flask], ingest: RecordingHTTPServer) -> None:
    app = sentry_app()
    assert app.test_client().get("/tickets/5").status_code == 200
    send_checkout(app)
    sentry_sdk.flush(timeout=5)
    received = ingest.wait_for(1, path=ENVELOPE_PATH)
    assert items_of_type(received, "transaction") == []
    assert len(items_of_type(received, "event")) == 1


@pytest.mark.parametrize("failure", ["refused", "error", "hanging"])
def test_a_failing_sentry_never_breaks_a_request(
    failure: str, sentry_app: Callable[..., Flask], ingest: RecordingHTTPServer
) -> None:
    if failure == "refused":
        app = sentry_app(SENTRY_DSN=f"http://publickey@127.0.0.1:{free_port()}/1")
    else:
        app = sentry_app()
        if failure == "error":
            ingest.respond(500)
        else:
            ingest.hang(30)
    client = app.test_client()
    started = time.perf_counter()
    for _ in range(3):
        response = send_checkout(app)
        assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
        assert client.get("/tickets/1").status_code == 200
    # Sending happens off the request path: a dead or hanging Sentry costs the request nothing.
    assert time.perf_counter() - started < 2.0
    assert app.extensions["centinela"].errors.flush() == 3
    if failure != "refused":
        ingest.wait_for(1, path=ENVELOPE_PATH)  # it was tried, and failed
    ingest.reset()  # release a hanging handler so the client can shut down


def test_init_is_idempotent_and_shutdown_turns_it_off(ingest: RecordingHTTPServer) -> None:
    options = SentryOptions(f"http://publickey@127.0.0.1:{ingest.port}/1", "test", "centinela@1", 0.0, 0.5)
    assert init_sentry(options) is True and sentry_active()
    client = sentry_sdk.get_client()
    assert init_sentry(options) is False and sentry_sdk.get_client() is client  # same options: same client
    other = SentryOptions(options.dsn, "staging", "centinela@1", 0.0, 0.5)
    assert init_sentry(other) is True and sentry_sdk.get_client() is not client
    assert client.transport is None  # the replaced client was closed
    assert sentry_sdk.get_client().options["send_default_pii"] is False
    assert "publickey" not in repr(other)
    shutdown_sentry(timeout=0.5)
    assert not sentry_active() and not sentry_sdk.get_client().is_active()


def test_no_dsn_means_no_sentry(app: Flask) -> None:
    shutdown_sentry(timeout=0.5)
    assert not sentry_active()
    assert app.test_client().get("/api/health/live").status_code == 200
    assert not sentry_sdk.get_client().is_active()


def test_a_bad_dsn_stops_start_up_with_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"SENTRY_DSN": "sentry.example/123"})
    assert str(raised.value).startswith("SENTRY_DSN=(hidden): expected a Sentry DSN")
    with pytest.raises(ConfigError, match="SENTRY_TRACES_SAMPLE_RATE='2'"):
        Settings.from_env({"SENTRY_TRACES_SAMPLE_RATE": "2"})


def test_hooks_sanitise_nested_events_and_breadcrumbs() -> None:
    event = {
        "message": "refund to jane.doe@example.com",
        "request": {"headers": [["Authorization", f"Bearer {BEARER}"], ["X-Forwarded-For", "198.51.100.23"]],
                    "cookies": {"session": "s3ss10n-c00k1e"}},
        "extra": {"card": 4242424242424242, "order_id": 1234567890123},
        "user": {"ip_address": "203.0.113.77"},
    }
    scrubbed = scrub_event(event, {})
    assert scrubbed == {
        "message": "refund to [email]",
        "request": {"headers": [["Authorization", "[redacted]"], ["X-Forwarded-For", "198.51.100.0"]],
                    "cookies": "[redacted]"},
        "extra": {"card": "[card ****4242]", "order_id": 1234567890123},
        "user": {"ip_address": "203.0.113.0"},
    }
    assert event["message"] == "refund to jane.doe@example.com"  # the SDK's own copy is left alone
    assert scrub_breadcrumb({"category": "http", "data": {"url": f"https://api.stripe.com/v1?key={STRIPE_KEY}"}}) == {
        "category": "http", "data": {"url": "https://api.stripe.com/v1?key=[redacted]"}}
