"""schemathesis against the served OpenAPI document (issues 15 and 16): every declared operation,
with all of schemathesis' checks, valid and invalid data, deterministic generation and a bounded
number of examples, on SQLite and PostgreSQL. Zero failures and zero server errors: bad input
is a 400 in the one error shape, and every answer is what the document says. The ingest
endpoints, whose bodies the document describes as binary, get hypothesis' arbitrary bodies
instead (below): every write endpoint is fuzzed.

Generation is derandomized (the same examples every run, so a failure reproduces) and bounded
(FUZZ_EXAMPLES per operation, default 25) to keep `make test` fast; raise FUZZ_EXAMPLES for a
longer hunt.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks

from app import create_app
from monitoring.clock import ManualClock
from monitoring.settings import Settings
from tests.conftest import ADMIN_KEY, INGEST_KEY

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
HEADERS = {"X-Admin-Key": ADMIN_KEY}

load_all_checks()
# The document describes answers to a key-holder; authorization checks that probe "what if the
# key is left out" are covered by tests/test_api_security.py with exact expectations.
CHECKS_USED = [check for check in CHECKS.get_all() if check.__name__ not in ("ignored_auth",)]

# Operations where a request the schema allows may still be refused with a 400 by a rule a JSON
# Schema cannot state (it depends on the clock or on what is stored); schemathesis' "valid data
# is accepted" check takes 400 as an answer there, and every other check still applies.
REFUSED_BY_RULES_BEYOND_THE_SCHEMA = {
    ("GET", "/api/monitoring/uptime"): "a month that has not begun yet (or before 1970) is refused",
    ("POST", "/api/monitoring/alerts"): "a silence, maintenance window, rule or inhibition list is checked as a "
    "whole by monitoring.alerts (a silence that ends before it starts, a rule whose figure is no figure)",
    ("POST", "/api/monitoring/events"): "an event is checked by monitoring.business.events beyond its schema: a real "
    "ISO 4217 code, a timestamp within the retention and at most 5 minutes ahead, a label that is not blank, a "
    "failure code only on a failed payment",
}
# Answers a bounded random walk may not reach, each sent once with every check: the Prometheus
# text and the OpenMetrics exposition (by Accept), the Datadog body, one category; the dashboard
# page and its Grafana and Datadog documents; events stored, in a batch, and repeated.
EXPLICIT_CASES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/api/monitoring/metrics"): [
        {"query": {"format": "prometheus"}},
        {"query": {"format": "prometheus"}, "headers": {"Accept": "application/openmetrics-text"}},
        {"query": {"format": "datadog", "window": "1h"}},
        {"query": {"category": "errors", "service": "shop", "include_internal": "true"}},
    ],
    ("GET", "/api/monitoring/errors"): [{"query": {"limit": "1", "since": "2026-01-01T00:00:00Z"}}],
    ("GET", "/api/monitoring/dashboard"): [
        {"query": {"format": "html"}},
        {"query": {"platform": "grafana"}},
        {"query": {"platform": "datadog"}},
        {"query": {"service": "shop"}},
    ],
    ("POST", "/api/monitoring/events"): [
        {"body": {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR", "id": "evt-1"}},
        {"body": {"events": [{"type": "ticket", "operation": "purchased", "quantity": 2},
                             {"type": "user_activity", "user_id": 42, "action": "login"}]}},
        {"body": {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR", "id": "evt-1"}},
    ],
}
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' default


def _config() -> schemathesis.config.SchemathesisConfig:
    operations = [
        {"include-method": method, "include-path": path,
         "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}}}
        for (method, path) in REFUSED_BY_RULES_BEYOND_THE_SCHEMA
    ]
    return schemathesis.config.SchemathesisConfig.from_dict({"operations": operations})


@pytest.fixture
def fuzzed_app(store_url: str, make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Any]:
    app = create_app(make_settings({"DATABASE_URL": store_url, "RATELIMIT_ENABLED": "false"}), clock=clock)
    monitoring = app.extensions["centinela"]
    monitoring.health.run_round()  # the database answers: /check and /ready answer 200, not 503
    yield app
    monitoring.shutdown()
    monitoring.store.dispose()


def _declared(app: Any, operation: Any) -> bool:
    """Operations declared with @endpoint (monitoring.api.contract); the others are converted in turn."""
    path = operation.path.replace("{", "<").replace("}", ">")
    for rule in app.url_map.iter_rules():
        template = rule.rule
        for converter in ("int:", "path:", "string:"):
            template = template.replace("<" + converter, "<")
        if template == path and operation.method.upper() in (rule.methods or ()):
            return getattr(app.view_functions[rule.endpoint], "_centinela_operation", None) is not None
    return False


def _variants(document: dict[str, Any], operation: Any) -> int:
    """How many bodies an operation takes: one per action of a body discriminated by action."""
    body = operation.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    schema = document["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    return len(schema.get("oneOf", ())) or 1


def _explicit(operation: Any, ran: Counter[str], statuses: Counter[str], media: Counter[str]) -> None:
    """The EXPLICIT_CASES of one operation, every check on each answer."""
    for fields in EXPLICIT_CASES.get((operation.method.upper(), operation.path), ()):
        parts = {name: fields[name] for name in ("query", "body") if name in fields}
        case = operation.Case(**parts, headers={**HEADERS, **fields.get("headers", {})})
        response = case.call_and_validate(checks=CHECKS_USED)
        ran[operation.label] += 1
        statuses[str(response.status_code)] += 1
        media[response.headers.get("content-type", [""])[0].split(";")[0]] += 1  # lowercase keys, lists


def _fuzz(operation: Any, examples: int, ran: Counter[str], statuses: Counter[str], by_action: bool) -> None:
    """``examples`` derandomized cases of one operation, every check on each answer; ``by_action``: its
    body is discriminated by ``action`` (counted per action)."""
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        ran[operation.label] += 1
        if by_action and isinstance(case.body, dict) and isinstance(case.body.get("action"), str):
            ran[f"{operation.label} action={case.body['action']}"] += 1
        response = case.call_and_validate(headers=HEADERS, checks=CHECKS_USED)
        statuses[str(response.status_code)] += 1

    fuzz()


def test_every_declared_operation_survives_the_fuzzer(fuzzed_app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzzed_app, config=_config())
    operations = [result.ok() for result in schema.get_all_operations()]
    declared = [operation for operation in operations if _declared(fuzzed_app, operation)]
    document = fuzzed_app.test_client().get("/api/openapi.json").get_json()
    assert declared, "no operation declared with @endpoint"
    failures: dict[str, str] = {}
    ran: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    media: Counter[str] = Counter()  # of the explicit cases
    for operation in declared:
        try:
            _explicit(operation, ran, statuses, media)
            variants = _variants(document, operation)
            _fuzz(operation, EXAMPLES * variants, ran, statuses, by_action=variants > 1)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:3000]
    # What ran, for the record (pytest -s shows it): operations, examples, and the answers.
    print(f"\nfuzzed {len(declared)} operations, {sum(ran[o.label] for o in declared)} examples; answers "
          f"{dict(sorted(statuses.items()))}")
    for label, count in sorted(ran.items()):
        print(f"  {count:4d}  {label}")
    assert failures == {}, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert not [status for status in statuses if status.startswith("5")], statuses
    assert {"text/plain", "application/openmetrics-text", "application/json", "text/html"} <= set(media), media
    assert {"200", "201"} <= set(statuses), statuses  # the events: stored, then a repeat of a stored id
    assert all(ran[operation.label] for operation in declared), "an operation ran no example"
    actions = [key for key in ran if " action=" in key]
    assert len(actions) >= sum(_variants(document, o) for o in declared if _variants(document, o) > 1), \
        f"an action ran no example: {actions}"


# --- the ingest endpoints ---------------------------------------------------------------------
# Their bodies are protobuf, OTLP JSON or Sentry envelopes, which the document describes as
# binary: schemathesis has nothing to generate from. hypothesis sends them arbitrary JSON (the
# OTLP JSON encoding and the store endpoint take it), arbitrary bytes, and envelopes whose header
# and items are arbitrary JSON, under each content type and encoding they accept.

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_OTLP_KEYS = st.sampled_from(["resourceSpans", "resourceMetrics", "resource", "scopeSpans", "spans", "attributes",
                              "startTimeUnixNano", "endTimeUnixNano", "kind", "name", "events", "status"])
# Shaped like OTLP JSON often enough to reach past the first field.
_OTLP_JSON = st.recursive(
    st.none() | st.integers() | st.text(max_size=20) | st.sampled_from(["1700000000000000000", 2, "http.route"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_OTLP_KEYS, inner, max_size=4),
    max_leaves=25,
)


def _envelope(header: Any, items: list[tuple[Any, Any]]) -> bytes:
    lines = [json.dumps(header)]
    for item_header, payload in items:
        lines += [json.dumps(item_header), json.dumps(payload)]
    return "\n".join(lines).encode()


_ENVELOPES = st.builds(
    _envelope,
    _JSON | st.fixed_dictionaries({"event_id": st.uuids().map(lambda u: u.hex)}),
    st.lists(st.tuples(st.fixed_dictionaries({"type": st.sampled_from(["event", "transaction", "session", "x"])})
                       | _JSON, _JSON), max_size=3),
)
_ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "identity", "zstd"])


def _encoded(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        import brotli

        return bytes(brotli.compress(body))
    return body


@pytest.fixture
def ingest_app(store_url: str, make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Any]:
    app = create_app(make_settings({"DATABASE_URL": store_url, "RATELIMIT_ENABLED": "false",
                                    "SENTRY_PROJECTS": '{"1": "shop"}'}), clock=clock)
    yield app
    app.extensions["centinela"].shutdown()
    app.extensions["centinela"].store.dispose()


def test_the_ingest_endpoints_survive_arbitrary_bodies(ingest_app: Any) -> None:
    client = ingest_app.test_client()
    statuses: Counter[int] = Counter()
    by_path: Counter[str] = Counter()
    key = {"X-API-Key": INGEST_KEY}
    sentry = {"X-Sentry-Auth": f"Sentry sentry_key={INGEST_KEY}, sentry_version=7"}

    def send(path: str, body: bytes, content_type: str, encoding: str | None, headers: dict[str, str]) -> None:
        sent = {**headers, "Content-Type": content_type}
        if encoding:
            sent["Content-Encoding"] = encoding
        response = client.post(path, data=_encoded(body, encoding), headers=sent)
        statuses[response.status_code] += 1
        by_path[f"{path.rstrip('/').rsplit('/', 1)[-1]} {response.status_code}"] += 1
        assert response.status_code < 500, (path, content_type, encoding, body[:300], response.get_data()[:300])
        if response.status_code >= 400 and response.mimetype == "application/json":
            answer = response.get_json()
            # OTLP/HTTP answers a google.rpc.Status ({"code", "message"}); the rest the one error shape.
            assert set(answer if path.startswith("/v1/") else answer["error"]) >= {"code", "message"}, answer

    @settings(max_examples=EXAMPLES * 4, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(path=st.sampled_from(["/v1/traces", "/v1/metrics"]), body=_OTLP_JSON | _JSON,
           raw=st.binary(max_size=200), encoding=_ENCODINGS,
           content_type=st.sampled_from(["application/json", "application/x-protobuf", "text/plain"]))
    @example(path="/v1/traces", body={"resourceSpans": []}, raw=b"", encoding=None, content_type="application/json")
    @example(path="/v1/metrics", body={"resourceMetrics": []}, raw=b"", encoding="gzip",
             content_type="application/json")
    def otlp(path: str, body: Any, raw: bytes, encoding: str | None, content_type: str) -> None:
        data = json.dumps(body).encode() if content_type == "application/json" else raw
        send(path, data, content_type, encoding, key)

    @settings(max_examples=EXAMPLES * 4, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(envelope=_ENVELOPES, event=_JSON, raw=st.binary(max_size=200), encoding=_ENCODINGS,
           shape=st.sampled_from(["envelope", "store", "raw-envelope"]),
           content_type=st.sampled_from(["application/x-sentry-envelope", "application/json", "text/plain"]))
    @example(envelope=_envelope({}, [({"type": "session"}, {})]), event=None, raw=b"", encoding=None,
             shape="envelope", content_type="application/x-sentry-envelope")
    @example(envelope=b"", event={"message": "fuzz"}, raw=b"", encoding="deflate", shape="store",
             content_type="application/json")
    def sentry_sdk(envelope: bytes, event: Any, raw: bytes, encoding: str | None, shape: str,
                   content_type: str) -> None:
        if shape == "store":
            send("/api/1/store/", json.dumps(event).encode(), content_type, encoding, sentry)
        else:
            send("/api/1/envelope/", envelope if shape == "envelope" else raw, content_type, encoding, sentry)

    otlp()
    sentry_sdk()
    print(f"\ningest fuzz: {sum(statuses.values())} bodies; answers {dict(sorted(by_path.items()))}")
    taken = {where.split()[0] for where, count in by_path.items() if where.endswith(" 200")}
    assert taken == {"traces", "metrics", "envelope", "store"}, by_path  # every endpoint took some
