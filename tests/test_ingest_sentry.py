"""The Sentry protocol as the real sentry-sdk speaks it: a Python shop (Flask, with the SDK's Flask
integration) reports to a local server through its DSN; the captured envelopes decode into scrubbed,
grouped errors and server requests, sessions beside them are accepted and dropped, and broken
envelopes get a typed refusal."""
from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.integrations.flask import FlaskIntegration

from monitoring.clock import ManualClock
from monitoring.errors.sentry import shutdown_sentry
from monitoring.ingest.body import SENTRY_ENVELOPE_LIMITS, brotli_supported, decode_body
from monitoring.ingest.errors import (
    ConflictingCredentials,
    IngestError,
    ItemTooLarge,
    MalformedEnvelope,
    UndecodableBody,
    UnsupportedMediaType,
)
from monitoring.ingest.records import IngestedError
from monitoring.ingest.sentry_protocol import (
    SentryBatch,
    check_envelope_content_type,
    check_store_content_type,
    decode_envelope,
    decode_store,
    parse_sentry_auth,
    sentry_response,
)
from tests.support.receiver import RecordedRequest, RecordingHTTPServer

KEY = "ingest_Key_0123456789"
EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"
SECRETS = (EMAIL, CARD, "4242424242424242", TOKEN, "hunter2", "s3ss10n")


class PaymentDeclined(Exception):
    pass


def charge(order_id: int, email: str) -> None:
    card = CARD  # noqa: F841 - local variables travel in Sentry events; they must not come out
    password = "hunter2"  # noqa: F841
    raise PaymentDeclined(f"card {CARD} of {email} declined for order {order_id}; Authorization: Bearer {TOKEN}")


def shop() -> Flask:
    """The monitored app: a Flask shop with sentry-sdk, as a user would write it."""
    app = Flask("shop")

    @app.post("/checkout/<int:order_id>")
    def checkout(order_id: int) -> Any:
        charge(order_id, EMAIL if order_id % 2 else "john.roe@example.org")
        return {}

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"ticket": ticket_id}

    @app.get("/refund/<int:order_id>")
    def refund(order_id: int) -> Any:
        raise PaymentDeclined("refund refused")

    return app


@pytest.fixture
def sentry_server() -> Iterator[RecordingHTTPServer]:
    server = RecordingHTTPServer().start()
    yield server
    shutdown_sentry(timeout=1.0)  # sentry-sdk's client is process-wide: no test leaves it on
    server.stop()


@pytest.fixture
def reporting_shop(sentry_server: RecordingHTTPServer) -> Callable[..., Flask]:
    def start(**options: Any) -> Flask:
        sentry_sdk.init(
            dsn=f"http://{KEY}@127.0.0.1:{sentry_server.port}/7",
            release="shop@1.4.2",
            environment="production",
            integrations=[FlaskIntegration(transaction_style=options.pop("transaction_style", "url"))],
            **options,
        )
        return shop()

    return start


def flush() -> None:
    sentry_sdk.flush(timeout=5)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


def envelopes(server: RecordingHTTPServer) -> list[RecordedRequest]:
    """Every envelope the SDK sent so far (flush first: the server records before it answers).

    A real SDK sends more than the events: an aggregate of sessions, client reports..."""
    return [request for request in server.requests if request.path == "/api/7/envelope/"]


def decode(request: RecordedRequest, clock: ManualClock) -> SentryBatch:
    """What an endpoint would do: check the type, inflate, decode."""
    check_envelope_content_type(request.header("content-type"))
    body = decode_body(request.body, request.header("content-encoding"), SENTRY_ENVELOPE_LIMITS)
    return decode_envelope(body, service="shop", clock=clock)


def decode_all(server: RecordingHTTPServer, clock: ManualClock) -> list[SentryBatch]:
    flush()
    return [decode(request, clock) for request in envelopes(server)]


def errors_of(batches: list[SentryBatch]) -> list[IngestedError]:
    return [error for batch in batches for error in batch.errors]


def exceptions_of(batches: list[SentryBatch]) -> list[IngestedError]:
    """The exception events. The SDK's logging integration may add a message event for Flask's
    "Exception on /checkout/17" log line (it does once a log record factory has dropped the
    record's exc_info, as Centinela's own redacting factory does when other tests ran first)."""
    return [error for error in errors_of(batches) if error.exception_type != "Message"]


def event_envelope(server: RecordingHTTPServer) -> RecordedRequest:
    """The one envelope holding an exception event."""
    flush()
    (request,) = [r for r in envelopes(server) if b'"exception":' in r.decoded_body]
    return request


# --- errors ------------------------------------------------------------------------------------------


def test_exception_with_pii_arrives_scrubbed_and_complete(reporting_shop: Callable[..., Flask],
                                                         sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    app = reporting_shop()
    app.test_client().post(f"/checkout/17?email={EMAIL}&token={TOKEN}", json={"card": CARD},
                           headers={"Authorization": f"Bearer {TOKEN}", "Cookie": "session=s3ss10n"})
    request = event_envelope(sentry_server)
    # gzip, or br when the brotli package is installed (sentry-sdk prefers it): both decode.
    assert request.header("content-encoding") == ("br" if brotli_supported() else "gzip")
    assert parse_sentry_auth(request.header("x-sentry-auth"), request.query) == KEY
    assert EMAIL.encode() in request.decoded_body  # the SDK did send them
    batch = decode(request, clock)
    (error,) = batch.errors
    assert error.service == "shop" and error.source == "sentry"
    assert error.exception_type == f"{__name__}.PaymentDeclined"
    assert error.message == ("card [card ****4242] of [email] declined for order 17; "
                             "Authorization: Bearer [redacted]")
    assert error.level == "error" and error.release == "shop@1.4.2" and error.environment == "production"
    assert error.method == "POST" and error.route == "POST /checkout/<int:order_id>"
    assert error.location == f"{__name__}:charge"
    assert error.frames[-1].function == "charge" and error.frames[-1].in_app
    assert error.frames[-1].filename.endswith("test_ingest_sentry.py")
    assert "charge" in error.stack and "PaymentDeclined" in error.stack
    assert error.event_id == batch.event_id and len(error.event_id) == 32
    assert sentry_response(batch) == {"id": error.event_id}
    assert abs(error.timestamp - time.time()) < 60
    everything = repr(batch)
    for secret in SECRETS:
        assert secret not in everything, secret


def test_same_exception_from_the_same_code_groups_and_another_place_does_not(
    reporting_shop: Callable[..., Flask], sentry_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    client = reporting_shop().test_client()
    client.post("/checkout/17")  # jane's card
    client.post("/checkout/18")  # john's: another message, same code
    client.get("/refund/3")
    first, second, third = exceptions_of(decode_all(sentry_server, clock))
    assert first.message != second.message
    assert first.fingerprint == second.fingerprint
    assert third.fingerprint != first.fingerprint and third.location == f"{__name__}:refund"


def test_the_sdks_own_fingerprint_wins(reporting_shop: Callable[..., Flask], sentry_server: RecordingHTTPServer,
                                       clock: ManualClock) -> None:
    app = reporting_shop()
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["payment-declined"]
        try:
            charge(1, EMAIL)
        except PaymentDeclined as exc:
            sentry_sdk.capture_exception(exc)
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["{{ default }}"]  # only the default: as if none were sent
        try:
            charge(2, EMAIL)
        except PaymentDeclined as exc:
            sentry_sdk.capture_exception(exc)
    app.test_client().post("/checkout/19")
    custom, default_only, plain = exceptions_of(decode_all(sentry_server, clock))
    assert custom.location == "payment-declined"
    assert custom.fingerprint != plain.fingerprint
    assert default_only.fingerprint == plain.fingerprint


def test_a_message_event_groups_on_its_template(reporting_shop: Callable[..., Flask],
                                                sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    reporting_shop()
    sentry_sdk.capture_message(f"stock low for {EMAIL}", level="warning")
    sentry_sdk.capture_message(f"stock low for {EMAIL}", level="warning")
    first, second = errors_of(decode_all(sentry_server, clock))
    assert first.exception_type == "Message" and first.message == "stock low for [email]"
    assert first.level == "warning" and first.fingerprint == second.fingerprint
    assert first.route == ""  # not sent from a request


# --- sessions and transactions ---------------------------------------------------------------------


def test_session_envelopes_beside_the_events_are_accepted_and_dropped(
    reporting_shop: Callable[..., Flask], sentry_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    client = reporting_shop().test_client()
    client.post("/checkout/17")  # the SDK tracks request sessions: an aggregate "sessions" item follows
    scope = sentry_sdk.get_isolation_scope()
    scope.start_session()  # and one explicit session, as a worker process would report it
    scope.end_session()
    batches = decode_all(sentry_server, clock)
    dropped: dict[str, int] = {}
    for batch in batches:
        for kind, count in batch.ignored_items.items():
            dropped[kind] = dropped.get(kind, 0) + count
    assert dropped.get("session", 0) >= 1 and dropped.get("sessions", 0) >= 1
    assert len(exceptions_of(batches)) == 1
    for batch in batches:
        if not batch.errors:
            assert sentry_response(batch) == {} and batch.requests == ()


def test_http_server_transactions_become_requests(reporting_shop: Callable[..., Flask],
                                                  sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    client = reporting_shop(traces_sample_rate=1.0).test_client()
    client.get(f"/tickets/8812?email={EMAIL}")
    (batch,) = [b for b in decode_all(sentry_server, clock) if b.requests]
    (request,) = batch.requests
    assert (request.service, request.method, request.route, request.status) == (
        "shop", "GET", "/tickets/<int:ticket_id>", 200)
    assert 0 < request.duration_seconds < 5 and abs(request.end_time - time.time()) < 60
    assert batch.errors == () and batch.event_id is not None


def test_endpoint_named_transactions_keep_the_endpoint_name(
    reporting_shop: Callable[..., Flask], sentry_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    client = reporting_shop(traces_sample_rate=1.0, transaction_style="endpoint").test_client()
    client.get("/tickets/8812")
    (batch,) = [b for b in decode_all(sentry_server, clock) if b.requests]
    assert batch.requests[0].route == "ticket"


def test_other_transactions_are_ignored(reporting_shop: Callable[..., Flask],
                                        sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    reporting_shop(traces_sample_rate=1.0)
    with sentry_sdk.start_transaction(op="queue.task", name="send_tickets"):
        pass
    batches = decode_all(sentry_server, clock)
    assert [b.ignored_items.get("transaction") for b in batches] == [1]
    assert all(b.requests == () for b in batches)


def test_the_legacy_store_body_of_the_same_event(reporting_shop: Callable[..., Flask],
                                                 sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    reporting_shop().test_client().post("/checkout/17")
    request = event_envelope(sentry_server)
    raw = request.decoded_body
    event_line = raw.split(b"\n")[2]  # header, item header, event: what a store request carries
    json_batch = decode_store(event_line, service="shop", clock=clock)
    old_sdk_body = base64.b64encode(zlib.compress(event_line))  # raven-era SDKs
    old_batch = decode_store(old_sdk_body, service="shop", clock=clock)
    assert json_batch.errors[0].fingerprint == old_batch.errors[0].fingerprint == decode(request, clock).errors[0].fingerprint
    assert sentry_response(json_batch) == {"id": json.loads(event_line)["event_id"]}
    check_store_content_type("application/json")
    with pytest.raises(UndecodableBody):
        decode_store(b"not an event", service="shop", clock=clock)
    with pytest.raises(UndecodableBody):
        decode_store(b"[1, 2, 3]", service="shop", clock=clock)


# --- authentication ----------------------------------------------------------------------------------


def test_auth_header_and_query_as_sdks_send_them() -> None:
    header = f"Sentry sentry_key={KEY}, sentry_version=7, sentry_client=sentry.python/2.75.0"
    assert parse_sentry_auth(header, {}) == KEY
    assert parse_sentry_auth(f"Sentry sentry_version=5,sentry_client=raven-js/3.0,sentry_key={KEY}", None) == KEY
    # The browser SDK: no header, the key in the query string (as parse_qs or a MultiDict gives it).
    assert parse_sentry_auth(None, {"sentry_key": [KEY], "sentry_version": ["7"]}) == KEY
    assert parse_sentry_auth(None, {"sentry_key": KEY}) == KEY
    assert parse_sentry_auth(header, {"sentry_key": KEY}) == KEY
    assert parse_sentry_auth(None, {}) is None
    assert parse_sentry_auth("Sentry sentry_version=7", {}) is None
    assert parse_sentry_auth("Sentry sentry_key=bad key!, sentry_version=7", {}) is None
    with pytest.raises(ConflictingCredentials) as caught:
        parse_sentry_auth(header, {"sentry_key": "another_key"})
    assert caught.value.status == 401 and KEY not in caught.value.message


def test_the_envelope_header_dsn_names_its_key(clock: ManualClock) -> None:
    body = (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42"}\n'
            b'{"type":"event","length":41,"content_type":"application/json"}\n'
            b'{"message":"hello world","level":"error"}\n')
    batch = decode_envelope(body, service="shop", clock=clock)
    assert batch.dsn_key == "e12d836b15bb49d7bbf99e64295d995b"
    assert batch.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert batch.errors[0].message == "hello world"


# --- framing: the documentation's examples and broken envelopes ---------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # Sentry's documented examples: explicit lengths, a CRLF inside a payload, a missing last newline.
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment","length":10,"content_type":"text/plain",'
        b'"filename":"hello.txt"}\n\xef\xbb\xbfHello\r\n\n{"type":"event","length":41,"content_type":"application/json",'
        b'"filename":"application.log"}\n{"message":"hello world","level":"error"}\n',
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment","length":10}\n\xef\xbb\xbfHello\r\n\n'
        b'{"type":"event","length":41}\n{"message":"hello world","level":"error"}',
        # Implicit lengths: the payload runs to the next newline, or to the end.
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment"}\nhelloworld\n'
        b'{"type":"event"}\n{"message":"hello world","level":"error"}\n',
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment","length":0}\n\n'
        b'{"type":"attachment","length":0}\n\n{"type":"event"}\n{"message":"hello world","level":"error"}',
    ],
)
def test_documented_framings(body: bytes, clock: ManualClock) -> None:
    batch = decode_envelope(body, service="shop", clock=clock)
    assert [error.message for error in batch.errors] == ["hello world"]
    assert batch.ignored_items["attachment"] >= 1


def test_header_only_and_session_only_envelopes(clock: ManualClock) -> None:
    assert decode_envelope(b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}', service="s", clock=clock).errors == ()
    session = b'{}\n{"type":"session"}\n{"started": "2020-02-07T14:16:00Z","attrs":{"release":"sentry-test@1.0.0"}}'
    batch = decode_envelope(session, service="s", clock=clock)
    assert batch.ignored_items == {"session": 1} and sentry_response(batch) == {}


def sdk_envelope(reporting_shop: Callable[..., Flask], sentry_server: RecordingHTTPServer) -> bytes:
    reporting_shop().test_client().post("/checkout/17")
    return event_envelope(sentry_server).decoded_body


def test_truncated_envelope_is_malformed(reporting_shop: Callable[..., Flask],
                                         sentry_server: RecordingHTTPServer, clock: ManualClock) -> None:
    body = sdk_envelope(reporting_shop, sentry_server)
    for cut in (len(body) // 2, len(body) - 10, body.index(b"\n") + 5):
        with pytest.raises(MalformedEnvelope) as caught:
            decode_envelope(body[:cut], service="shop", clock=clock)
        assert caught.value.status == 400


def test_a_truncated_sdk_body_is_undecodable(reporting_shop: Callable[..., Flask],
                                             sentry_server: RecordingHTTPServer) -> None:
    reporting_shop().test_client().post("/checkout/17")
    request = event_envelope(sentry_server)
    with pytest.raises(UndecodableBody):
        decode_body(request.body[:-20], request.header("content-encoding"), SENTRY_ENVELOPE_LIMITS)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n\n",
        b"not json\n",
        b'["a list"]\n',
        b'{}\n{"length": 2}\n{}\n',  # an item without a type
        b'{}\n{"type":"event","length":-1}\n{}\n',
        b'{}\n{"type":"event","length":"2"}\n{}\n',
        b'{}\n{"type":"event","length":2}\n{}X',  # no newline after the payload
        b'{}\n{"type":"event"}\nnot json\n',
        b'{}\n{"type":"event"}\n[1]\n',
        b'{}\n{"type":"event","length":2}\n',  # truncated
        b'{}\nnot a header\n',
        b'{}\n{"type":"event"}\n' + b"[" * 100_000 + b"\n",
    ],
)
def test_malformed_envelopes(body: bytes, clock: ManualClock) -> None:
    with pytest.raises(MalformedEnvelope):
        decode_envelope(body, service="shop", clock=clock)


def test_event_over_one_mebibyte_is_413_and_big_attachments_are_skipped(clock: ManualClock) -> None:
    big_event = json.dumps({"message": "x" * (1024 * 1024)}).encode()
    body = b"{}\n" + json.dumps({"type": "event", "length": len(big_event)}).encode() + b"\n" + big_event + b"\n"
    with pytest.raises(ItemTooLarge) as caught:
        decode_envelope(body, service="shop", clock=clock)
    assert caught.value.status == 413
    attachment = bytes(3 * 1024 * 1024)
    body = (b"{}\n" + json.dumps({"type": "attachment", "length": len(attachment)}).encode() + b"\n" + attachment
            + b'\n{"type":"event"}\n{"message":"kept"}\n')
    batch = decode_envelope(body, service="shop", clock=clock)
    assert [error.message for error in batch.errors] == ["kept"] and batch.ignored_items == {"attachment": 1}


def test_too_many_items(clock: ManualClock) -> None:
    body = b"{}\n" + b'{"type":"client_report"}\n{}\n' * 1001
    with pytest.raises(ItemTooLarge):
        decode_envelope(body, service="shop", clock=clock)


@pytest.mark.parametrize("content_type", [None, "application/x-sentry-envelope", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_envelope_content_types_sdks_send(content_type: str | None) -> None:
    check_envelope_content_type(content_type)


def test_other_content_types_are_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        check_envelope_content_type("application/xml")
    with pytest.raises(UnsupportedMediaType):
        check_store_content_type("image/png")


# --- fields that are bounded, dropped or made believable ------------------------------------------


def test_unknown_fields_are_dropped_and_kept_ones_bounded(clock: ManualClock) -> None:
    event = {
        "event_id": "9ec79c33-ec99-42ab-8353-589fcb2e04dc",
        "timestamp": "1999-01-01T00:00:00Z",  # unbelievable: becomes the time it arrived
        "level": "LOUD",
        "exception": {"values": [{"type": "TypeError", "value": f"x of {EMAIL}\u0000\ud800",
                                  "stacktrace": {"frames": [{"function": "f", "abs_path": "/home/jane/app/main.js",
                                                             "lineno": 3, "vars": {"password": "hunter2"}}]}}]},
        "tags": {"order": "77", "api_key": "sk_live_abc", "k" * 40: "v" * 300, "customer": EMAIL},
        "user": {"email": EMAIL, "ip_address": "203.0.113.77"},
        "breadcrumbs": {"values": [{"message": f"login {EMAIL}"}]},
        "extra": {"card": CARD},
        "request": {"method": "get", "url": f"https://shop.example/orders/8812/items/ab12cd34ef?email={EMAIL}",
                    "headers": {"Authorization": f"Bearer {TOKEN}"}, "cookies": "session=s3ss10n"},
        "transaction": "/orders/8812/items/ab12cd34ef",
        "transaction_info": {"source": "url"},
    }
    body = b"{}\n" + b'{"type":"event"}\n' + json.dumps(event).encode() + b"\n"
    (error,) = decode_envelope(body, service="shop", clock=clock).errors
    assert error.timestamp == clock.now() and error.level == "error"
    assert error.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
    assert error.message == "x of [email]\ufffd"
    assert error.route == "GET /orders/<id>/items/<id>"
    assert error.frames[0].filename == "main.js"
    tags = dict(error.tags)
    assert tags["order"] == "77" and tags["api_key"] == "[redacted]" and tags["customer"] == "[email]"
    assert ("k" * 32, "v" * 200) in error.tags
    everything = repr(error)
    for secret in (EMAIL, "hunter2", "203.0.113.77", CARD, TOKEN, "s3ss10n", "/home/jane", "8812"):
        assert secret not in everything, secret


def test_gzip_bomb_in_an_envelope_is_refused(clock: ManualClock) -> None:
    from monitoring.ingest.body import BodyLimits
    from monitoring.ingest.errors import InflatedBodyTooLarge

    bomb = gzip.compress(b"{}\n" + b'{"type":"attachment"}\n' + bytes(8 * 1024 * 1024))
    with pytest.raises(InflatedBodyTooLarge):
        decode_body(bomb, "gzip", BodyLimits(max_raw_bytes=1024 * 1024, max_inflated_bytes=1024 * 1024))


# --- whatever arrives, the answer is a value or a typed refusal ----------------------------------

EVENT_KEYS = ["exception", "values", "type", "value", "module", "stacktrace", "frames", "function", "lineno",
              "in_app", "filename", "abs_path", "tags", "request", "method", "url", "transaction", "transaction_info",
              "source", "fingerprint", "level", "release", "environment", "timestamp", "start_timestamp",
              "contexts", "trace", "op", "message", "logentry", "event_id", "response", "status_code"]
EVENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.sampled_from(["http.server", "route", "url"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(EVENT_KEYS), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=st.dictionaries(st.sampled_from(EVENT_KEYS), EVENTS, max_size=8), kind=st.sampled_from(["event", "transaction"]))
def test_any_event_shape_decodes_or_is_refused_cleanly(event: dict, kind: str) -> None:
    payload = json.dumps(event).encode()
    body = b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n' + json.dumps({"type": kind}).encode() + b"\n" + payload
    batch = decode_envelope(body, service="shop", clock=ManualClock())
    for error in batch.errors:
        assert len(error.fingerprint) == 16 and isinstance(error.message, str)
    decode_store(payload, service="shop", clock=ManualClock())


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300))
def test_any_bytes_give_a_batch_or_a_typed_refusal(body: bytes) -> None:
    try:
        decode_envelope(body, service="shop", clock=ManualClock())
    except IngestError:
        pass
