"""GET /api/monitoring/dashboard (JSON, HTML, Grafana, Datadog), the page's feed and its sign-in,
through the Flask test client over a real store, with real traffic and real local dependencies."""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from app import create_app
from monitoring.clock import ManualClock, isoformat
from monitoring.dashboard.data import DashboardSources, build_dashboard
from monitoring.dashboard.session import COOKIE_NAME, SESSION_SECONDS, same_origin
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.metrics.rollups import RequestRollups
from monitoring.security.audit import ACCESS_DENIED
from monitoring.settings import Settings
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, METRICS_HEADERS, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer

DASHBOARD = "/api/monitoring/dashboard"
FEED = "/api/monitoring/dashboard/data"
LOGIN = "/api/monitoring/dashboard/login"
LOGOUT = "/api/monitoring/dashboard/logout"
SAME_ORIGIN = {"Origin": "http://localhost"}
RESTRICTED = ("performance", "series", "errors", "business", "alerts")
STRIPE_KEY = "sk_test_dashboard0123456789abcdef"


def assert_json_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and METRICS_KEY not in body and ADMIN_KEY not in body
    return error


@pytest.fixture
def stripe() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture
def shop(make_settings: Callable[..., Settings], clock: ManualClock, stripe: RecordingHTTPServer) -> Iterator[Flask]:
    """The service with a real Stripe dependency (a local server), so a breaker shows on the dashboard."""
    application = create_app(
        make_settings({"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": stripe.url, "BREAKER_FAILURE_THRESHOLD": "2"}),
        clock=clock,
    )
    yield application
    application.extensions["centinela"].shutdown()
    application.extensions["centinela"].store.dispose()


def monitoring_of(app: Flask) -> Any:
    return app.extensions["centinela"]


def serve_traffic(app: Flask, count: int, prefix: str = "tickets") -> None:
    """Real requests through the app's own stack; pages the service does not have (404, <unmatched>)."""
    client = app.test_client()
    for i in range(count):
        assert client.get(f"/{prefix}/{i}?ref=mail").status_code == 404
    monitoring_of(app).scheduler.run_process("metrics_flush")


def post_events(app: Flask, events: list[dict[str, Any]]) -> None:
    response = app.test_client().post("/api/monitoring/events", json={"events": events}, headers=METRICS_HEADERS)
    assert response.status_code == 201, response.get_data(as_text=True)


def payment(outcome: str, amount: int, currency: str = "EUR") -> dict[str, Any]:
    return {"type": "payment", "outcome": outcome, "amount": amount, "currency": currency, "provider": "stripe"}


def sign_in(client: Any, key: str = METRICS_KEY, headers: dict[str, str] | None = None) -> Any:
    return client.post(LOGIN, data={"key": key}, headers=SAME_ORIGIN if headers is None else headers)


def session_cookie(response: Any) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE_NAME + "=")]
    return header


# --- the JSON document ----------------------------------------------------------------------


def test_json_needs_the_metrics_key_and_refusals_are_audited(client: Any, monitoring: Any) -> None:
    assert_json_error(client.get(DASHBOARD), 401, "unauthorized")
    assert_json_error(client.get(DASHBOARD, headers={"X-API-Key": "not-the-key"}), 401, "unauthorized")
    assert_json_error(client.get(DASHBOARD + "?platform=grafana"), 401, "unauthorized")
    assert_json_error(client.get(DASHBOARD + "?platform=datadog&format=json"), 401, "unauthorized")
    refused = monitoring.audit.page(kind=ACCESS_DENIED)
    assert [e.detail["reason"] for e in refused] == ["missing_key", "missing_key", "wrong_key", "missing_key"]
    assert all(e.path == DASHBOARD for e in refused)
    assert client.get(DASHBOARD, headers=METRICS_HEADERS).get_json()["view"] == "full"
    assert client.get(DASHBOARD, headers=ADMIN_HEADERS).get_json()["view"] == "full"


@pytest.mark.parametrize(
    "query, message",
    [
        ("format=xml", "unknown format 'xml'; valid: json, html"),
        ("format=HTML", "unknown format 'HTML'; valid: json, html"),
        ("platform=kibana", "unknown platform 'kibana'; valid: grafana, datadog"),
        ("platform=grafana&format=html", "platform= answers a JSON dashboard document; leave out format=html"),
        ("platform=datadog&format=csv", "unknown format 'csv'; valid: json, html"),
    ],
)
def test_unknown_format_or_platform_is_400_even_with_the_key(client: Any, query: str, message: str) -> None:
    error = assert_json_error(client.get(f"{DASHBOARD}?{query}", headers=METRICS_HEADERS), 400, "invalid_parameter")
    assert error["message"] == message


def test_unknown_format_is_400_before_any_key_is_asked_for(client: Any) -> None:
    assert_json_error(client.get(DASHBOARD + "?format=pdf"), 400, "invalid_parameter")


def test_document_shows_real_figures_after_real_traffic(shop: Flask, clock: ManualClock) -> None:
    monitoring = monitoring_of(shop)
    monitoring.health.run_round()
    serve_traffic(shop, 30)
    post_events(shop, [payment("succeeded", 1999), payment("succeeded", 500), payment("failed", 4500),
                       payment("succeeded", 1200, "JPY"),
                       {"type": "ticket", "operation": "purchased", "quantity": 3},
                       {"type": "user_activity", "user_id": "u-1", "action": "login"}])
    clock.advance(10)
    monitoring.health.run_round()

    document = shop.test_client().get(DASHBOARD, headers=METRICS_HEADERS).get_json()

    assert document["view"] == "full" and document["generatedAt"] == isoformat(clock.now())
    assert document["status"] == {"status": "healthy", "word": "Healthy", "health_score": 100,
                                  "checkedAt": isoformat(clock.now()),
                                  "summary": "All 2 dependencies are healthy."}
    services = {s["name"]: s for s in document["services"]}
    assert set(services) == {"database", "stripe"}
    assert services["stripe"]["circuit"] == {"state": "closed", "consecutiveFailures": 0, "nextTrialIn": None}
    assert services["stripe"]["availability24h"] == 1.0 and services["database"]["circuit"] is None

    assert document["uptime"]["sla"]["target"] == 99.9
    assert document["uptime"]["uptime"]["percentage"] == 100.0
    assert document["uptime"]["sla"]["errorBudget"]["remainingPercentage"] == 100.0
    assert document["incidents"]["count"] == 0 and document["incidents"]["open"] is None

    performance = document["performance"]
    assert performance["requests.count"] == 30 and performance["status"]["4xx"] == 30
    assert [(r["route"], r["count"]) for r in performance["routes"]] == [("<unmatched>", 30)]
    assert performance["api.response_time.p95"] is not None

    business = document["business"]
    assert business["window"]["label"] == "today"
    assert business["payments.succeeded"] == 3 and business["payments.failed"] == 1
    assert business["payments.success_rate"] == 75.0
    assert business["revenue"] == [
        {"currency": "EUR", "minorUnits": 2499, "amount": "24.99", "payments": 2},
        {"currency": "JPY", "minorUnits": 1200, "amount": "1200", "payments": 1},
    ]
    assert business["users.active"]["1h"] == 1
    assert business["tickets.operations"]["purchased"] == {"operations": 1, "tickets": 3}

    hour = document["series"]["1h"]
    assert hour["stepSeconds"] == 60 and len(hour["points"]) == 60
    current = hour["points"][-1]
    assert current["at"] == isoformat(clock.now() // 60 * 60)
    assert current["requests"] == 30 and current["errors"] == 0 and current["errorShare"] == 0.0
    assert current["payments"] == {"succeeded": 3, "failed": 1}
    assert sum(p["requests"] for p in hour["points"]) == 30
    day = document["series"]["24h"]
    assert day["stepSeconds"] == 900 and len(day["points"]) == 96
    assert day["points"][-1]["requests"] == 30
    assert document["errors"]["errors.count"] == 0 and document["errors"]["groups"] == []


def test_series_are_merged_histograms_per_bucket_not_averages(app: Flask, clock: ManualClock) -> None:
    """Two minutes with different latencies: each bucket's p95 is its own; the hour's p95 merges both."""
    monitoring = monitoring_of(app)
    rollups = RequestRollups(monitoring.store, clock)
    serve_traffic(app, 20)
    first_minute = clock.now() // 60 * 60
    clock.advance(60)
    serve_traffic(app, 5, prefix="slow")
    clock.advance(1)
    document = app.test_client().get(DASHBOARD, headers=METRICS_HEADERS).get_json()
    points = {p["at"]: p for p in document["series"]["1h"]["points"]}
    for start, count in ((first_minute, 20), (first_minute + 60, 5)):
        figures = rollups.figures(TimeWindow(start, start + 60, "1m"))
        p50, p95, p99 = figures.histogram.quantiles((0.5, 0.95, 0.99))
        point = points[isoformat(start)]
        assert point["requests"] == count == figures.count
        assert (point["p50"], point["p95"], point["p99"]) == tuple(round(v * 1000, 3) for v in (p50, p95, p99))
    merged = rollups.figures(TimeWindow(first_minute, first_minute + 120, "2m"))
    assert document["performance"]["api.response_time.p95"] == round(merged.histogram.quantile(0.95) * 1000, 3)


def test_an_open_breaker_and_a_down_dependency_show_in_words(shop: Flask, clock: ManualClock,
                                                            stripe: RecordingHTTPServer) -> None:
    monitoring = monitoring_of(shop)
    stripe.respond(500)
    for _ in range(2):
        monitoring.health.run_round()
        clock.advance(30)
    document = shop.test_client().get(FEED).get_json()
    assert document["status"]["status"] == "unhealthy" and document["status"]["word"] == "Unhealthy"
    assert document["status"]["summary"].startswith("stripe is unhealthy (")
    stripe_row = next(s for s in document["services"] if s["name"] == "stripe")
    assert stripe_row["circuit"]["state"] == "open" and stripe_row["circuit"]["consecutiveFailures"] == 2
    assert document["incidents"]["open"] is not None and document["incidents"]["open"]["services"] == ["stripe"]


# --- the public feed: health and uptime only -------------------------------------------------


def test_feed_without_a_session_has_no_business_or_request_figures_at_all(shop: Flask, clock: ManualClock) -> None:
    monitoring_of(shop).health.run_round()
    serve_traffic(shop, 12)
    post_events(shop, [payment("succeeded", 87654, "GBP")])
    response = shop.test_client().get(FEED)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "Cookie" in response.headers["Vary"]
    document = response.get_json()
    assert document["view"] == "public" and document["restricted"] == list(RESTRICTED)
    assert set(document) == {"generatedAt", "view", "refreshSeconds", "status", "services", "uptime", "incidents",
                             "restricted", "viewer"}
    assert document["viewer"] == {"signedIn": False, "role": None, "sessionExpiresAt": None}
    raw = response.get_data(as_text=True)
    for figure in ("876.54", "87654", "GBP", "payments", "revenue", "<unmatched>", "api.response_time"):
        assert figure not in raw
    assert document["status"]["status"] == "healthy" and len(document["services"]) == 2


def test_feed_with_a_key_header_is_full_and_a_wrong_one_is_401(client: Any) -> None:
    assert client.get(FEED, headers=METRICS_HEADERS).get_json()["view"] == "full"
    assert client.get(FEED, headers=METRICS_HEADERS).get_json()["viewer"]["role"] == "metrics"
    assert_json_error(client.get(FEED, headers={"X-API-Key": "guess"}), 401, "unauthorized")


# --- the HTML page ---------------------------------------------------------------------------


def test_page_is_public_offline_ready_and_never_carries_the_key(client: Any) -> None:
    response = client.get(DASHBOARD + "?format=html")
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert METRICS_KEY not in html and ADMIN_KEY not in html and "api_key" not in html
    # Everything it loads is on this site: no CDN, nothing from the network.
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") or s.startswith("#") or s == "data:," for s in sources), sources
    assert '<form id="signin" class="signin" method="post" action="/api/monitoring/dashboard/login"' in html
    assert 'aria-live="polite"' in html and '<th scope="col">Circuit breaker</th>' in html
    for asset, mimetype in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        served = client.get(f"/api/monitoring/dashboard/static/{asset}")
        assert served.status_code == 200 and served.mimetype == mimetype
        assert "http://" not in served.get_data(as_text=True).replace("http://www.w3.org/2000/svg", "")


def test_root_redirects_to_the_page(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == DASHBOARD + "?format=html"


def test_a_host_app_keeps_its_own_root(make_settings: Callable[..., Settings]) -> None:
    from monitoring.extension import Monitoring

    host = Flask("shop")
    Monitoring(host, settings=make_settings())

    @host.get("/")
    def home() -> str:
        return "the shop"

    assert host.test_client().get("/").get_data(as_text=True) == "the shop"
    assert host.test_client().get(DASHBOARD + "?format=html").status_code == 200
    host.extensions["centinela"].shutdown()


# --- sign-in ---------------------------------------------------------------------------------


def test_sign_in_sets_a_signed_httponly_strict_cookie_and_opens_the_full_feed(client: Any) -> None:
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == DASHBOARD + "?format=html"
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/api/monitoring/dashboard" in cookie
    assert f"Max-Age={SESSION_SECONDS}" in cookie and "Secure" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert METRICS_KEY not in token and METRICS_KEY not in response.headers["Location"]
    document = client.get(FEED).get_json()
    assert document["view"] == "full" and document["viewer"]["signedIn"] is True
    assert document["viewer"]["role"] == "metrics" and "business" in document
    page = client.get(DASHBOARD + "?format=html").get_data(as_text=True)
    assert "Signed in with the metrics key" in page and '<form id="signin" class="signin" method="post"' in page


def test_over_https_the_cookie_is_secure(client: Any) -> None:
    response = client.post(LOGIN, data={"key": METRICS_KEY}, base_url="https://dash.example",
                           headers={"Origin": "https://dash.example"})
    assert response.status_code == 303 and "; Secure" in session_cookie(response)


def test_the_admin_key_signs_in_too(client: Any) -> None:
    assert sign_in(client, ADMIN_KEY).status_code == 303
    assert client.get(FEED).get_json()["viewer"]["role"] == "admin"


@pytest.mark.parametrize("given, reason, message", [
    ("wrong-key-0000", "wrong_key", "That key is not valid."),
    ("  ", "missing_key", "Enter the metrics key"),
    ("x" * 600, "wrong_key", "That key is not valid."),
])
def test_a_wrong_key_gets_a_clear_message_and_is_audited(client: Any, monitoring: Any, given: str, reason: str,
                                                         message: str) -> None:
    response = sign_in(client, given)
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert COOKIE_NAME not in response.headers.get("Set-Cookie", "")
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and message in html
    (entry,) = monitoring.audit.page(kind=ACCESS_DENIED)
    assert entry.detail == {"reason": reason, "needed": "metrics"} and entry.path == LOGIN
    if given.strip():  # what was typed is neither echoed nor written to the audit log
        assert given.strip() not in html and given.strip() not in json.dumps(entry.to_json())
    assert client.get(FEED).get_json()["view"] == "public"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://localhost.evil.example"},
    {"Referer": "https://evil.example/page"},
    {},  # neither header: no browser posts a form like that
    {"Origin": "null"},  # a sandboxed or file:// page
])
def test_cross_site_sign_in_is_refused_and_audited(client: Any, monitoring: Any, headers: dict[str, str]) -> None:
    response = sign_in(client, METRICS_KEY, headers)
    assert_json_error(response, 403, "cross_site_request")
    assert "Set-Cookie" not in response.headers
    (entry,) = monitoring.audit.page(kind=ACCESS_DENIED)
    assert entry.detail["reason"] == "cross_site"


def test_same_origin_by_referer_is_accepted(client: Any) -> None:
    response = sign_in(client, headers={"Referer": "http://localhost/api/monitoring/dashboard?format=html"})
    assert response.status_code == 303


def test_same_origin_compares_hosts_exactly() -> None:
    assert same_origin("https://dash.example", None, "dash.example")
    assert same_origin("http://dash.example:8000", None, "dash.example:8000")
    assert not same_origin("http://dash.example:9000", None, "dash.example:8000")
    assert not same_origin(None, "not a url", "dash.example")
    assert not same_origin("https://dash.example.evil", "https://dash.example/", "dash.example")


def test_sign_in_body_must_be_a_form(client: Any) -> None:
    response = client.post(LOGIN, json={"key": METRICS_KEY}, headers=SAME_ORIGIN)
    assert_json_error(response, 415, "unsupported_media_type")
    assert_json_error(client.post(LOGIN, data="k" * 2_000_000, headers={**SAME_ORIGIN, "Content-Type":
                      "application/x-www-form-urlencoded"}), 413, "payload_too_large")


def _limited(make_settings: Callable[..., Settings], clock: ManualClock, storage: str) -> Flask:
    # Centinela's own prefix (the host's flask-limiter one is not read): runs sharing a Redis keep apart.
    return create_app(make_settings({"RATELIMIT_LOGIN": "3/minute", "RATELIMIT_STORAGE_URI": storage,
                                     "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}"}), clock=clock)


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_failed_sign_ins_are_rate_limited_per_address(make_settings: Callable[..., Settings], clock: ManualClock,
                                                      storage: str) -> None:
    if storage == "redis":
        uri = os.environ.get("TEST_REDIS_URL")
        if not uri:
            pytest.skip("TEST_REDIS_URL is not set: Redis rate-limit storage not tested")
    else:
        uri = "memory://"
    application = _limited(make_settings, clock, uri)
    client = application.test_client()
    # A good sign-in costs nothing: only failures count.
    assert sign_in(client).status_code == 303
    assert [sign_in(client, f"guess-{i}").status_code for i in range(3)] == [401, 401, 401]
    limited = sign_in(client, "guess-3")
    assert limited.status_code == 429 and limited.mimetype == "text/html"
    assert 0 < int(limited.headers["Retry-After"]) <= 61
    assert "Too many failed sign-ins" in limited.get_data(as_text=True)
    # Once over the limit even the right key waits: guessing gains nothing from one more try.
    assert sign_in(client).status_code == 429
    # Another address has its own budget.
    other = client.post(LOGIN, data={"key": METRICS_KEY}, headers=SAME_ORIGIN, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 303
    reasons = [e.detail["reason"] for e in application.extensions["centinela"].audit.page(kind=ACCESS_DENIED)]
    assert reasons.count("wrong_key") == 3 and reasons.count("rate_limited") == 2
    application.extensions["centinela"].shutdown()


def test_sign_out_clears_the_cookie(client: Any) -> None:
    sign_in(client)
    assert client.get(FEED).get_json()["view"] == "full"
    response = client.post(LOGOUT, headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["Location"] == DASHBOARD + "?format=html"
    cleared = session_cookie(response)
    assert "Max-Age=0" in cleared or "Expires=Thu, 01 Jan 1970" in cleared
    assert client.get(FEED).get_json()["view"] == "public"
    assert_json_error(client.post(LOGOUT, headers={"Origin": "https://evil.example"}), 403, "cross_site_request")


def test_a_reload_after_a_failed_sign_in_lands_on_the_page(client: Any) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 303 and response.headers["Location"] == DASHBOARD + "?format=html"


def test_a_forged_or_expired_session_is_public(client: Any, clock: ManualClock) -> None:
    sign_in(client)
    token = client.get_cookie(COOKIE_NAME, path="/api/monitoring/dashboard").value
    client.set_cookie(COOKIE_NAME, token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
                      path="/api/monitoring/dashboard")
    assert client.get(FEED).get_json()["view"] == "public"
    client.set_cookie(COOKIE_NAME, token, path="/api/monitoring/dashboard")
    assert client.get(FEED).get_json()["view"] == "full"
    clock.advance(SESSION_SECONDS - 5)
    assert client.get(FEED).get_json()["view"] == "full"
    clock.advance(10)
    assert client.get(FEED).get_json()["view"] == "public"


def test_changing_a_key_ends_the_sessions_it_signed(make_settings: Callable[..., Settings], clock: ManualClock) -> None:
    first = create_app(make_settings(), clock=clock)
    client = first.test_client()
    sign_in(client)
    token = client.get_cookie(COOKIE_NAME, path="/api/monitoring/dashboard").value
    first.extensions["centinela"].shutdown()
    for env in ({"METRICS_API_KEY": "rotated-metrics-key-0123456789"}, {"ADMIN_API_KEY": "rotated-admin-key-0123456"},
                {}):
        again = create_app(make_settings(env), clock=clock)
        other = again.test_client()
        other.set_cookie(COOKIE_NAME, token, path="/api/monitoring/dashboard")
        assert other.get(FEED).get_json()["view"] == ("full" if not env else "public"), env
        again.extensions["centinela"].shutdown()


# --- missing or failing features -------------------------------------------------------------


def test_a_failing_provider_blanks_only_its_section(app: Flask, monitoring: Any) -> None:
    def broken(window: TimeWindow) -> CategoryReport:
        raise RuntimeError("errors store unreachable")

    monitoring.services.categories["errors"] = broken
    document = app.test_client().get(DASHBOARD, headers=METRICS_HEADERS).get_json()
    assert document["errors"] == {"available": False,
                                  "reason": "the errors figures could not be computed; the details are in the server log"}
    assert document["business"]["payments.count"] == 0 and document["status"]["status"] == "unknown"


def test_features_that_are_missing_say_so(monitoring: Any) -> None:
    sources = monitoring.services.dashboard
    bare = DashboardSources(store=sources.store, clock=sources.clock, categories={}, rollups=sources.rollups)
    document = build_dashboard(bare, "full")
    assert document["uptime"] == {"available": False,
                                  "reason": "no uptime figures in this service: the uptime feature is not installed"}
    assert document["incidents"]["available"] is False
    assert document["alerts"] == {"available": False,
                                  "reason": "no alerting engine in this service: active alerts cannot be listed"}
    assert document["business"]["available"] is False and document["errors"]["available"] is False
    assert document["status"]["status"] == "unknown" and document["services"] == []
    assert "payments" not in document["series"]["1h"]["points"][0]
    with pytest.raises(ValueError):
        build_dashboard(bare, "everything")


def test_active_alerts_show_with_their_severity(app: Flask) -> None:
    client = app.test_client()
    for severity, description in (("low", "Disk filling slowly"), ("critical", "Payments failing")):
        response = client.post("/api/monitoring/alerts", headers=ADMIN_HEADERS,
                               json={"action": "trigger", "severity": severity, "description": description,
                                     "service": "payments"})
        assert response.status_code in (200, 201), response.get_data(as_text=True)
    alerts = client.get(DASHBOARD, headers=METRICS_HEADERS).get_json()["alerts"]
    assert [(a["severity"], a["state"]) for a in alerts["active"]] == [("critical", "firing"), ("low", "firing")]
    assert "Payments failing" in json.dumps(alerts["active"][0])
    assert alerts["counts"]["firing"] == 2 and alerts["counts"]["firingBySeverity"]["critical"] == 1
    assert "alerts" not in client.get(FEED).get_json()


def test_every_figure_is_read_afresh_on_every_refresh(
        shop: Flask, clock: ManualClock, stripe: RecordingHTTPServer) -> None:
    monitoring = monitoring_of(shop)
    client = shop.test_client()
    monitoring.health.run_round()
    assert client.get(FEED).get_json()["incidents"]["open"] is None
    stripe.respond(500)
    for _ in range(2):
        clock.advance(1)
        monitoring.health.run_round()
    document = client.get(FEED).get_json()
    assert document["status"]["word"] == "Unhealthy"
    assert document["incidents"]["open"]["services"] == ["stripe"]  # the incident shows at the next refresh
    clock.advance(7)
    later = client.get(FEED).get_json()
    # One moment per answer: the incident's duration is measured at the answer's own time.
    assert later["incidents"]["open"]["durationSeconds"] == document["incidents"]["open"]["durationSeconds"] + 7
    assert later["generatedAt"] == isoformat(clock.now())


def test_a_failed_section_says_so_and_the_next_refresh_answers(monitoring: Any, clock: ManualClock) -> None:
    sources = monitoring.services.dashboard
    calls: list[int] = []

    def flaky(now: float) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store blinked")
        return sources.uptime(now)  # type: ignore[misc]

    flaky_sources = DashboardSources(store=sources.store, clock=clock, categories=sources.categories,
                                     rollups=sources.rollups, uptime=flaky)
    assert build_dashboard(flaky_sources, "public")["uptime"]["available"] is False
    assert "sla" in build_dashboard(flaky_sources, "public")["uptime"]
    assert "sla" in build_dashboard(flaky_sources, "public")["uptime"] and len(calls) == 3


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(make_app: Callable[..., Any]) -> None:
    """A copied cookie stopped working only at a key change before; now at sign-out, on every
    worker (the session is a row in the store, read here by a second app on the same store)."""
    app = make_app()
    browser = app.test_client()
    signed_in = sign_in(browser)
    assert signed_in.status_code == 303
    cookie = session_cookie(signed_in).split(";", 1)[0].split("=", 1)[1]
    thief = make_app().test_client()  # another worker of the same service, same store and keys
    thief.set_cookie(COOKIE_NAME, cookie, path="/api/monitoring/dashboard")
    assert thief.get(FEED).get_json()["view"] == "full"
    assert browser.post("/api/monitoring/dashboard/logout", headers=SAME_ORIGIN).status_code == 303
    copied = thief.get(FEED).get_json()
    assert copied["view"] == "public" and copied["viewer"]["signedIn"] is False


def test_signing_in_works_with_rate_limiting_off(make_app: Callable[..., Any]) -> None:
    """RATELIMIT_ENABLED=false made every sign-in answer 500 (an assertion in the limiter)."""
    client = make_app({"RATELIMIT_ENABLED": "false"}).test_client()
    assert sign_in(client, "wrong-key-0000").status_code == 401
    assert sign_in(client).status_code == 303
