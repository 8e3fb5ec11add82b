"""Keys, JSON errors, body limits, rate limits, CORS and the audit log, through HTTP."""
from __future__ import annotations

import csv
import hmac
import io
import os
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from monitoring.api.errors import json_object
from monitoring.security.keys import KeyRing
from monitoring.settings import Settings
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, METRICS_HEADERS, METRICS_KEY

AUDIT = "/api/monitoring/audit"


def assert_json_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message"} and error["message"]
    if code:
        assert error["code"] == code
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and METRICS_KEY not in body and ADMIN_KEY not in body
    return error


# --- keys -------------------------------------------------------------------------------


def test_missing_key_is_401(client: Any) -> None:
    assert_json_error(client.get(AUDIT), 401, "unauthorized")


def test_wrong_key_is_401(client: Any) -> None:
    assert_json_error(client.get(AUDIT, headers={"X-Admin-Key": "nope"}), 401, "unauthorized")


def test_read_key_on_admin_endpoint_is_403(client: Any) -> None:
    assert_json_error(client.get(AUDIT, headers=METRICS_HEADERS), 403, "forbidden")


def test_admin_key_by_header_and_query_parameter(client: Any) -> None:
    assert client.get(AUDIT, headers=ADMIN_HEADERS).status_code == 200
    assert client.get(AUDIT, headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    assert client.get(f"{AUDIT}?api_key={ADMIN_KEY}").status_code == 200


def test_read_key_reads_metrics_and_admin_key_grants_read(client: Any) -> None:
    assert client.get("/api/monitoring/metrics", headers=METRICS_HEADERS).status_code == 200
    assert client.get("/api/monitoring/metrics", headers=ADMIN_HEADERS).status_code == 200
    assert client.get(f"/api/monitoring/metrics?api_key={METRICS_KEY}").status_code == 200
    assert_json_error(client.get("/api/monitoring/metrics"), 401)


def test_keys_are_compared_in_constant_time(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert client.get(AUDIT, headers={"X-Admin-Key": "guess"}).status_code == 401
    # every configured key was compared through compare_digest, not ==
    assert {b for _, b in compared} >= {METRICS_KEY.encode(), ADMIN_KEY.encode()}


def test_missing_keys_are_generated_once_with_mode_0600(tmp_path: Path) -> None:
    announced: list[tuple[str, str]] = []
    ring = KeyRing.load("", "", str(tmp_path), lambda role, value, path: announced.append((role, value)))
    assert {role for role, _ in announced} == {"metrics", "admin", "ingest"}
    for role in ("metrics", "admin", "ingest"):
        path = tmp_path / f"{role}-api-key"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert path.read_text().strip() == ring.get(role).secret
        assert len(ring.get(role).secret) >= 40
    again = KeyRing.load("", "", str(tmp_path), lambda *a: announced.append(a))
    assert len(announced) == 3  # not announced again
    assert again.get("admin").secret == ring.get("admin").secret


def test_concurrent_workers_agree_on_one_generated_key(tmp_path: Path) -> None:
    rings: list[KeyRing] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        rings.append(KeyRing.load("", "", str(tmp_path)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.get("admin").secret for r in rings}) == 1


def test_the_app_never_runs_open(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings({"METRICS_API_KEY": "", "ADMIN_API_KEY": ""})
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/api/monitoring/metrics").status_code == 401
    generated = (Path(settings.var_dir) / "metrics-api-key").read_text().strip()
    assert client.get("/api/monitoring/metrics", headers={"X-API-Key": generated}).status_code == 200


# --- errors -----------------------------------------------------------------------------


@pytest.fixture
def host_app(make_settings: Callable[..., Settings]) -> Flask:
    """A host app with Centinela attached, with routes that read JSON and that fail."""
    app = create_app(make_settings({"MAX_BODY_BYTES": "2048"}))

    @app.post("/orders")
    def orders():  # type: ignore[no-untyped-def]
        return {"received": json_object()}

    @app.get("/explode")
    def explode():  # type: ignore[no-untyped-def]
        raise RuntimeError(f"database password is hunter2 for {ADMIN_KEY}")

    return app


def test_json_errors_for_every_status(host_app: Flask, client: Any) -> None:
    c = host_app.test_client()
    assert_json_error(c.post("/orders", data="{not json", content_type="application/json"), 400, "invalid_json")
    assert_json_error(c.post("/orders", json=[1, 2]), 400, "invalid_body")
    assert_json_error(c.get(AUDIT), 401)
    assert_json_error(c.get(AUDIT, headers=METRICS_HEADERS), 403)
    assert_json_error(c.get("/no/such/path"), 404, "not_found")
    response = c.delete("/api/health/live")
    assert_json_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert_json_error(c.post("/orders", json={"blob": "x" * 4096}), 413, "payload_too_large")
    assert_json_error(c.post("/orders", data="a=1", content_type="application/x-www-form-urlencoded"), 415)
    assert c.post("/orders", json={"ok": 1}).get_json() == {"received": {"ok": 1}}


def test_500_has_no_stack_trace_or_secret(host_app: Flask) -> None:
    response = host_app.test_client().get("/explode")
    error = assert_json_error(response, 500, "internal_error")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "RuntimeError" not in error["message"]


def test_oversized_body_is_refused_even_where_the_body_is_not_read(host_app: Flask) -> None:
    response = host_app.test_client().get("/api/health/live", data="x" * 5000)
    assert_json_error(response, 413)


# --- rate limits --------------------------------------------------------------------------


def _limited_app(make_settings: Callable[..., Settings], storage: str) -> Flask:
    # Centinela's own prefix (the host's RATELIMIT_KEY_PREFIX config is not Centinela's): runs
    # that share one Redis must not share counters.
    settings = make_settings({"RATELIMIT_STORAGE_URI": storage, "RATELIMIT_DEFAULT": "3/minute",
                              "RATELIMIT_HEALTH": "2/minute", "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"})
    app = Flask("limited")
    from monitoring.extension import Monitoring

    Monitoring(app, settings=settings)
    return app


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_rate_limit_answers_429_json_with_retry_after(
    storage: str, make_settings: Callable[..., Settings]
) -> None:
    if storage == "redis":
        uri = os.environ.get("TEST_REDIS_URL")
        if not uri:
            pytest.skip("TEST_REDIS_URL is not set: Redis rate-limit storage not tested")
    else:
        uri = "memory://"
    app = _limited_app(make_settings, uri)
    client = app.test_client()
    statuses = [client.get("/api/monitoring/metrics", headers=METRICS_HEADERS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/monitoring/metrics", headers=METRICS_HEADERS)
    assert_json_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # health has its own budget
    assert [client.get("/api/health/live").status_code for _ in range(3)] == [200, 200, 429]
    if storage == "redis":
        # a second app (another worker) on the same Redis shares the count
        other = Flask("other-worker")
        from monitoring.extension import Monitoring

        prefix = Monitoring.of(app).settings.ratelimit.ratelimit_key_prefix
        Monitoring(other, settings=make_settings({"RATELIMIT_STORAGE_URI": uri, "RATELIMIT_DEFAULT": "3/minute",
                                                  "RATELIMIT_KEY_PREFIX": prefix}))
        assert other.test_client().get("/api/monitoring/metrics", headers=METRICS_HEADERS).status_code == 429


def test_client_address_comes_from_x_forwarded_for_only_when_trusted(
    make_settings: Callable[..., Settings],
) -> None:
    for trusted, expect_separate_budgets in (("0", False), ("1", True)):
        # TRUSTED_PROXIES is the service's (a host app applies its own ProxyFix, if any).
        client = create_app(make_settings({"RATELIMIT_DEFAULT": "1/minute", "TRUSTED_PROXIES": trusted})).test_client()
        first = client.get("/api/monitoring/metrics", headers={**METRICS_HEADERS, "X-Forwarded-For": "198.51.100.1"})
        second = client.get("/api/monitoring/metrics", headers={**METRICS_HEADERS, "X-Forwarded-For": "198.51.100.2"})
        assert first.status_code == 200
        assert (second.status_code == 200) is expect_separate_budgets


# --- CORS ---------------------------------------------------------------------------------


def test_cors_is_off_by_default_and_follows_cors_origins(make_settings: Callable[..., Settings]) -> None:
    plain = create_app(make_settings()).test_client()
    response = plain.get("/api/health/live", headers={"Origin": "https://shop.example"})
    assert "Access-Control-Allow-Origin" not in response.headers

    allowed = create_app(make_settings({"CORS_ORIGINS": "https://shop.example"})).test_client()
    response = allowed.get("/api/health/live", headers={"Origin": "https://shop.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    response = allowed.get("/api/health/live", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


# --- audit log --------------------------------------------------------------------------


def test_refused_access_is_audited_with_anonymised_ip(client: Any) -> None:
    client.get(AUDIT, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    client.get(AUDIT, headers={"X-Admin-Key": "wrong"}, environ_base={"REMOTE_ADDR": "203.0.113.78"})
    client.get(AUDIT, headers=METRICS_HEADERS)
    entries = client.get(f"{AUDIT}?kind=access_denied", headers=ADMIN_HEADERS).get_json()["entries"]
    reasons = [e["detail"]["reason"] for e in entries]
    assert reasons == ["insufficient_role", "wrong_key", "missing_key"]
    assert entries[2]["clientIp"] == "203.0.113.0"
    assert entries[0]["actor"].startswith("metrics:")
    body = str(entries)
    assert "wrong" not in [e["actor"] for e in entries] and METRICS_KEY not in body


def test_audit_paging_filters_and_csv_export(client: Any, clock: Any) -> None:
    for _ in range(5):
        client.get(AUDIT)
        clock.advance(60)
    first = client.get(f"{AUDIT}?limit=2", headers=ADMIN_HEADERS).get_json()
    assert len(first["entries"]) == 2 and first["next"]
    second = client.get(f"{AUDIT}?limit=2&before={first['next']['before']}", headers=ADMIN_HEADERS).get_json()
    assert second["entries"][0]["id"] < first["entries"][-1]["id"]

    since = first["entries"][1]["at"]
    ranged = client.get(f"{AUDIT}?since={since}", headers=ADMIN_HEADERS).get_json()["entries"]
    assert len(ranged) == 2

    response = client.get(f"{AUDIT}?format=csv", headers=ADMIN_HEADERS)
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    # oldest first: the five refusals, then the export's own audit entry
    assert [r["kind"] for r in rows] == ["access_denied"] * 5 + ["admin_action"]
    assert [int(r["id"]) for r in rows] == sorted(int(r["id"]) for r in rows)
    # the export itself is an audited admin action
    actions = client.get(f"{AUDIT}?kind=admin_action", headers=ADMIN_HEADERS).get_json()["entries"]
    assert actions[0]["action"] == "audit.export" and actions[0]["actor"].startswith("admin:")


def test_csv_export_defuses_formulas() -> None:
    from monitoring.security.audit import AuditEntry, render_csv

    entry = AuditEntry(1, 0.0, "admin_action", "admin:1", "=HYPERLINK(\"http://x\")", "", "-2+3", {})
    rows = list(csv.reader(io.StringIO("".join(render_csv([entry])))))
    assert rows[1][4] == "'=HYPERLINK(\"http://x\")" and rows[1][6] == "'-2+3"


@pytest.mark.parametrize(
    "query", ["since=yesterday", "kind=nope", "limit=0", "limit=abc", "before=-3", "format=xml"]
)
def test_audit_bad_parameters_are_400(client: Any, query: str) -> None:
    assert_json_error(client.get(f"{AUDIT}?{query}", headers=ADMIN_HEADERS), 400, "invalid_parameter")


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e400"])
def test_time_parameters_that_are_no_moment_are_400(client: Any, value: str) -> None:
    for query in (f"since={value}", f"since={value}&format=csv", f"until={value}"):
        assert_json_error(client.get(f"{AUDIT}?{query}", headers=ADMIN_HEADERS), 400, "invalid_parameter")


def test_percent_encoded_key_names_are_redacted_in_logs() -> None:
    import logging

    from monitoring.security.log_redaction import RedactingFilter

    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1,
                               '"GET /api/monitoring/metrics?api%%5Fkey=%s HTTP/1.1"', (METRICS_KEY,), None)
    assert RedactingFilter().filter(record) is True
    assert METRICS_KEY not in record.getMessage()
    assert "[redacted]" in record.getMessage()


def test_https_behind_a_trusted_proxy_is_seen_as_https(make_settings: Callable[..., Settings]) -> None:
    """The dashboard's session cookie gets its Secure flag from request.is_secure."""
    for trusted, expected in (("1", True), ("0", False)):
        app = create_app(make_settings({"TRUSTED_PROXIES": trusted}))

        @app.get("/scheme")
        def scheme():  # type: ignore[no-untyped-def]
            from flask import request

            return {"secure": request.is_secure}

        response = app.test_client().get("/scheme", headers={"X-Forwarded-Proto": "https"})
        assert response.get_json() == {"secure": expected}


def test_retry_after_is_sent_only_with_a_refusal(make_settings: Callable[..., Settings]) -> None:
    client = _limited_app(make_settings, "memory://").test_client()
    ok = client.get("/api/health/live")
    assert ok.status_code == 200 and "Retry-After" not in ok.headers and "X-RateLimit-Limit" in ok.headers
    client.get("/api/health/live")
    refused = client.get("/api/health/live")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_a_host_apps_own_routes_are_not_rate_limited(make_settings: Callable[..., Settings]) -> None:
    from monitoring.extension import Monitoring

    host = Flask("shop")

    @host.get("/tickets")
    def tickets():  # type: ignore[no-untyped-def]
        return {"tickets": []}

    Monitoring(host, settings=make_settings({"RATELIMIT_DEFAULT": "2/minute"}))
    client = host.test_client()
    assert [client.get("/tickets").status_code for _ in range(5)] == [200] * 5
    statuses = [client.get("/api/monitoring/metrics", headers=METRICS_HEADERS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
