"""/api/health/check and /api/health/ready through HTTP, with real local dependencies."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from monitoring.clock import ManualClock
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.store.database import Store
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, METRICS_HEADERS, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer, Response, SwitchableTCPServer, free_port
from tests.test_health_checks import checks_env as checks
from tests.test_health_checks import http_server, tcp_server  # noqa: F401  (the same real servers)

CHECK = "/api/health/check"
READY = "/api/health/ready"
IETF = {"Accept": "application/health+json"}
STRIPE_KEY = "sk_live_51ApiResponseSecret0123456789abcdef"
BREVO_KEY = "xkeysib-fedcba9876543210fedcba9876543210-ApiResponse"



def run_round(application: Any) -> None:
    application.extensions["centinela"].health.run_round()


def test_before_the_first_round_it_says_unknown_rather_than_healthy(client: Any) -> None:
    response = client.get(CHECK)
    assert response.status_code == 503
    assert "X-Health-Score" not in response.headers
    assert response.get_json() == {
        "status": "unknown",
        "health_score": None,
        "checkedAt": None,
        "services": {
            "database": {"status": "unknown", "responseTime": None, "checkedAt": None, "critical": True,
                         "error": "not checked yet", "circuit": None}
        },
    }
    ietf = client.get(CHECK, headers=IETF)
    assert ietf.status_code == 503 and ietf.get_json()["status"] == "fail"


def test_all_healthy_answers_200_with_score_100(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    application = make_app(
        {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": http_server.url,
         "BREVO_API_KEY": BREVO_KEY, "BREVO_API_BASE": http_server.url}
    )
    run_round(application)
    response = application.test_client().get(CHECK)
    assert response.status_code == 200
    assert response.headers["X-Health-Score"] == "100"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert (body["status"], body["health_score"]) == ("healthy", 100)
    assert body["checkedAt"] == "2026-01-01T00:00:00.000Z"
    assert list(body["services"]) == ["database", "stripe", "brevo"]
    for name, service in body["services"].items():
        assert service["status"] == "healthy" and isinstance(service["responseTime"], float), name
        assert service["checkedAt"] == "2026-01-01T00:00:00.000Z" and service["error"] is None
    assert body["services"]["stripe"]["circuit"] == {"state": "closed", "consecutiveFailures": 0, "nextTrialIn": None}
    assert body["services"]["database"]["circuit"] is None


@pytest.mark.parametrize(
    "critical, server_status, expected_http, expected_status, expected_score",
    [
        # database (critical, weight 3) healthy + one more dependency
        (False, 500, 200, "degraded", 75),  # (3*1 + 1*0) / 4
        (True, 500, 503, "unhealthy", 50),  # (3*1 + 3*0) / 6
        (False, 429, 200, "degraded", 88),  # (3*1 + 1*0.5) / 4 = 87.5
        (True, 429, 200, "degraded", 75),  # (3*1 + 3*0.5) / 6
        (True, 200, 200, "healthy", 100),
    ],
)
def test_status_code_and_weighted_score(
    make_app: Callable[..., Any],
    http_server: RecordingHTTPServer,
    critical: bool,
    server_status: int,
    expected_http: int,
    expected_status: str,
    expected_score: int,
) -> None:
    application = make_app(checks({"name": "search", "type": "http", "url": http_server.url + "/h", "critical": critical}))
    http_server.respond(server_status)
    run_round(application)
    response = application.test_client().get(CHECK)
    assert response.status_code == expected_http
    body = response.get_json()
    assert (body["status"], body["health_score"]) == (expected_status, expected_score)
    assert response.headers["X-Health-Score"] == str(expected_score)


def test_the_readme_weighting_example() -> None:
    from monitoring.health.status import Weighed, health_score, overall_status

    services = [Weighed("healthy", True), Weighed("healthy", True), Weighed("unhealthy", False)]
    assert (health_score(services), overall_status(services)) == (86, "degraded")
    assert health_score([Weighed("unknown", True)]) is None
    assert health_score([Weighed("degraded", True), Weighed("unknown", False)]) == 50


def test_a_critical_tcp_dependency_down_answers_503(
    make_app: Callable[..., Any], tcp_server: SwitchableTCPServer, http_server: RecordingHTTPServer
) -> None:
    application = make_app(
        checks(
            {"name": "redis", "type": "tcp", "host": "127.0.0.1", "port": tcp_server.port, "critical": True,
             "timeout": 0.5},
            {"name": "search", "type": "http", "url": http_server.url, "latency_threshold_ms": 100},
        )
    )
    client = application.test_client()
    http_server.respond_sequence([Response(200, delay=0.2)])
    run_round(application)
    assert client.get(CHECK).get_json()["status"] == "degraded"  # search is slow
    tcp_server.refuse()
    run_round(application)
    response = client.get(CHECK)
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"]["status"] == "unhealthy"
    assert body["services"]["redis"]["error"] == "connection refused"
    assert body["health_score"] == 57  # (3*1 + 3*0 + 1*1) / 7


def test_service_parameter_answers_for_one_dependency(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    application = make_app(checks({"name": "search", "type": "http", "url": http_server.url}))
    http_server.respond(503)
    run_round(application)
    client = application.test_client()
    one = client.get(f"{CHECK}?service=search")
    assert one.status_code == 503 and one.headers["X-Health-Score"] == "0"
    assert one.get_json()["service"] == "search"
    assert one.get_json()["status"] == "unhealthy" and one.get_json()["error"] == "HTTP 503"
    database = client.get(f"{CHECK}?service=database")
    assert database.status_code == 200 and database.headers["X-Health-Score"] == "100"
    ietf = client.get(f"{CHECK}?service=search", headers=IETF).get_json()
    assert list(ietf["checks"]) == ["search:responseTime"] and ietf["status"] == "fail"

    unknown = client.get(f"{CHECK}?service=paypal")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"] == {
        "code": "unknown_service",
        "message": "no service 'paypal'; known: database, search",
        "known": ["database", "search"],
    }
    assert client.get(f"{CHECK}?service=").status_code == 404


def test_health_json_follows_the_ietf_draft(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    application = make_app(
        checks(
            {"name": "search", "type": "http", "url": http_server.url + "/s", "latency_threshold_ms": 100},
            {"name": "gone", "type": "tcp", "host": "127.0.0.1", "port": free_port()},
        )
    )
    http_server.respond_sequence([Response(200, delay=0.2)])
    run_round(application)
    response = application.test_client().get(CHECK, headers=IETF)
    assert response.status_code == 200  # gone is not critical
    assert response.mimetype == "application/health+json"
    assert response.headers["X-Health-Score"] == "70"  # (3*1 + 1*0.5 + 1*0) / 5
    body = response.get_json()
    assert body["status"] == "warn"
    assert list(body["checks"]) == ["database:responseTime", "search:responseTime", "gone:responseTime"]
    (database,) = body["checks"]["database:responseTime"]
    assert database["componentType"] == "datastore" and database["status"] == "pass"
    assert database["observedUnit"] == "ms" and isinstance(database["observedValue"], float)
    assert database["time"] == "2026-01-01T00:00:00.000Z"
    (search,) = body["checks"]["search:responseTime"]
    assert search["status"] == "warn" and search["observedValue"] >= 200 and "threshold" in search["output"]
    (gone,) = body["checks"]["gone:responseTime"]
    assert gone["status"] == "fail" and gone["output"] == "connection refused" and "observedValue" not in gone
    assert "gone: connection refused" in body["output"]
    # a client that accepts anything gets the plain JSON
    assert application.test_client().get(CHECK, headers={"Accept": "*/*"}).mimetype == "application/json"


def test_refresh_needs_the_admin_key_and_is_audited(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    application = make_app(checks({"name": "search", "type": "http", "url": http_server.url + "/h"}))
    client = application.test_client()
    assert client.get(f"{CHECK}?refresh=true").status_code == 401
    assert client.get(f"{CHECK}?refresh=true", headers={"X-Admin-Key": "wrong"}).status_code == 401
    forbidden = client.get(f"{CHECK}?refresh=true", headers=METRICS_HEADERS)
    assert forbidden.status_code == 403 and forbidden.get_json()["error"]["code"] == "forbidden"
    assert http_server.requests == []  # refused requests ran nothing
    bad = client.get(f"{CHECK}?refresh=maybe", headers=ADMIN_HEADERS)
    assert bad.status_code == 400 and bad.get_json()["error"]["message"] == "refresh must be true or false"

    refreshed = client.get(f"{CHECK}?refresh=true", headers=ADMIN_HEADERS)
    assert refreshed.status_code == 200 and refreshed.get_json()["status"] == "healthy"
    assert len(http_server.requests) == 1
    assert client.get(f"{CHECK}?refresh=1&api_key={ADMIN_KEY}").status_code == 200
    assert client.get(f"{CHECK}?refresh=false").status_code == 200  # no key needed to not refresh

    entries = client.get("/api/monitoring/audit", headers=ADMIN_HEADERS).get_json()["entries"]
    actions = [(e["kind"], e["action"]) for e in entries]
    assert actions.count(("admin_action", "health.refresh")) == 2
    assert ("access_denied", "GET /api/health/check") in actions
    body = json.dumps(entries)
    assert ADMIN_KEY not in body and METRICS_KEY not in body


def test_a_refresh_never_runs_beside_a_round_already_running(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    from monitoring.health.service import ROUND_LOCK
    from monitoring.store.lease import LeaderLease

    application = make_app(checks({"name": "search", "type": "http", "url": http_server.url + "/h"}))
    monitoring = application.extensions["centinela"]
    client = application.test_client()
    # another process (the leader's scheduled round) is in the middle of a round
    other = LeaderLease(monitoring.store, "leader-round", clock, ttl=30, name=ROUND_LOCK)
    assert other.try_acquire()
    assert client.get(f"{CHECK}?refresh=true", headers=ADMIN_HEADERS).status_code in (200, 503)
    assert http_server.requests == []  # answered from the store, probed nothing
    assert monitoring.health.run_exclusive_round() is None
    other.release()
    assert client.get(f"{CHECK}?refresh=true", headers=ADMIN_HEADERS).status_code == 200
    assert len(http_server.requests) == 1
    # a round whose process died frees the lock once it expires
    assert other.try_acquire()
    clock.advance(31)
    assert monitoring.health.run_exclusive_round() is not None
    assert len(http_server.requests) == 2


def test_the_public_answer_reveals_no_secret_or_address(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    internal = f"http://health:s3cret-pass@127.0.0.1:{http_server.port}/internal?token=tok-abc"
    application = make_app(
        {
            "STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": http_server.url,
            "BREVO_API_KEY": BREVO_KEY, "BREVO_API_BASE": http_server.url,
            **checks({"name": "internal", "type": "http", "url": internal, "critical": True}),
        }
    )
    http_server.respond(401, {"message": f"Key not found: {STRIPE_KEY} {BREVO_KEY} 10.0.3.7"})
    client = application.test_client()
    texts = []
    for _ in range(6):  # down, then breakers open (their errors, times and states)
        run_round(application)
        clock.advance(10)
        texts += [client.get(CHECK).get_data(as_text=True), client.get(CHECK, headers=IETF).get_data(as_text=True)]
        texts += [client.get(f"{CHECK}?service={name}").get_data(as_text=True) for name in ("stripe", "internal")]
        texts.append(client.get(READY).get_data(as_text=True))
    everything = "\n".join(texts)
    assert "HTTP 401" in everything and "circuit open" in everything
    for secret in (STRIPE_KEY, BREVO_KEY, "sk_live", "xkeysib", "s3cret-pass", "tok-abc", "127.0.0.1",
                   str(http_server.port), "10.0.3", "/internal", "sqlite", "store.db"):
        assert secret not in everything, secret


def test_an_open_breaker_is_shown_with_the_time_until_the_next_trial(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    application = make_app({"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_API_BASE": http_server.url})
    http_server.respond(500)
    for _ in range(5):
        run_round(application)
    clock.advance(12)
    stripe = application.test_client().get(f"{CHECK}?service=stripe").get_json()
    assert stripe["status"] == "unhealthy"
    # The round that opened the breaker keeps the answer that opened it, beside the breaker's timing.
    assert stripe["error"] == "HTTP 500; circuit open, next trial in 18s"
    assert stripe["responseTime"] is not None  # it was called: the response time is that call's
    assert stripe["circuit"] == {"state": "open", "consecutiveFailures": 5, "nextTrialIn": 18.0}
    clock.advance(1)
    run_round(application)  # refused by the breaker: not called, and it says what opened it
    stripe = application.test_client().get(f"{CHECK}?service=stripe").get_json()
    assert stripe["error"] == "circuit open after HTTP 500: not called; next trial in 17s"
    assert stripe["responseTime"] is None


def test_results_that_stopped_coming_are_unknown_not_healthy(
    make_app: Callable[..., Any], clock: ManualClock
) -> None:
    application = make_app()
    run_round(application)
    client = application.test_client()
    assert client.get(CHECK).status_code == 200
    stale_after = application.extensions["centinela"].health.stale_after
    clock.advance(stale_after + 1)
    response = client.get(CHECK)
    database = response.get_json()["services"]["database"]
    assert response.status_code == 503 and database["status"] == "unknown"
    assert database["error"].startswith("no result for ") and database["checkedAt"] == "2026-01-01T00:00:00.000Z"


def test_a_recovery_is_recorded_as_an_event(
    make_app: Callable[..., Any], tcp_server: SwitchableTCPServer, clock: ManualClock
) -> None:
    application = make_app(checks({"name": "redis", "type": "tcp", "host": "127.0.0.1", "port": tcp_server.port}))
    health = application.extensions["centinela"].health
    tcp_server.refuse()
    run_round(application)
    clock.advance(30)
    tcp_server.resume()
    run_round(application)
    events = [(e.kind, e.from_status, e.to_status, e.at) for e in health.events(service="redis")]
    assert events == [
        ("down", "unknown", "unhealthy", clock.now() - 30),
        ("recovered", "unhealthy", "healthy", clock.now()),
    ]


# --- readiness and liveness ------------------------------------------------------------------------


def test_a_payment_provider_down_lowers_health_but_keeps_instances_ready(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    """A load balancer polls /ready: a critical dependency that is not in READINESS_DEPENDENCIES
    (a payment provider) makes /check say unhealthy, but must not pull every instance out."""
    application = make_app(
        checks(
            {"name": "search", "type": "http", "url": http_server.url + "/s"},
            {"name": "payments", "type": "http", "url": http_server.url + "/p", "critical": True},
        )
    )
    client = application.test_client()
    ready = client.get(READY)
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"  # nothing is down (yet)
    http_server.route("/s", 500)
    http_server.route("/p", 500)
    run_round(application)
    assert client.get("/api/health/check").status_code == 503  # unhealthy: a critical dependency is down
    assert client.get(READY).status_code == 200  # ... and still in rotation


def test_ready_answers_503_for_the_dependencies_it_is_told_to_need(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    application = make_app(
        {
            **checks(
                {"name": "search", "type": "http", "url": http_server.url + "/s"},
                {"name": "payments", "type": "http", "url": http_server.url + "/p", "critical": True},
            ),
            "READINESS_DEPENDENCIES": "store,database,payments",
        }
    )
    client = application.test_client()
    http_server.route("/s", 500)
    run_round(application)
    assert client.get(READY).status_code == 200  # search is not needed to serve
    http_server.route("/p", 500)
    run_round(application)
    not_ready = client.get(READY)
    assert not_ready.status_code == 503
    assert not_ready.get_json()["error"] == {
        "code": "not_ready",
        "message": "not ready: dependency payments is unhealthy (HTTP 500)",
        "reasons": ["dependency payments is unhealthy (HTTP 500)"],
    }


def test_when_the_store_is_gone_ready_and_check_fail_but_live_answers(
    make_app: Callable[..., Any],
) -> None:
    application = make_app()
    run_round(application)
    # The database goes away: point the store at a PostgreSQL port where nothing listens.
    store: Store = application.extensions["centinela"].store
    store.dispose()
    store.url = f"postgresql://centinela:hunter2@127.0.0.1:{free_port()}/prod"
    store.dialect = "postgresql"
    client = application.test_client()
    assert client.get("/api/health/live").status_code == 200
    ready = client.get(READY)
    assert ready.status_code == 503 and ready.get_json()["error"]["reasons"] == ["store unavailable"]
    check = client.get(CHECK)
    assert check.status_code == 503
    body = check.get_json()
    assert body["status"] == "unhealthy" and body["services"]["database"]["error"] == "store unavailable"
    text = check.get_data(as_text=True) + ready.get_data(as_text=True)
    assert "hunter2" not in text and "127.0.0.1" not in text and "prod" not in text


def test_bad_query_values_get_json_errors(client: Any) -> None:
    for path in (f"{CHECK}?refresh=yesplease", f"{CHECK}?refresh=2"):
        response = client.get(path)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"
    assert client.post(CHECK).status_code == 405
    assert client.post(READY).status_code == 405


# --- wiring: metrics category, retention, the scheduler job ------------------------------------------


def test_the_health_metrics_category(make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock) -> None:
    application = make_app({"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_API_BASE": http_server.url})
    monitoring = application.extensions["centinela"]
    run_round(application)
    clock.advance(30)
    http_server.respond(500)
    run_round(application)
    provider = monitoring.services.categories["health"]
    report = provider(TimeWindow(clock.now() - 300, clock.now() + 1, "5m"))
    assert isinstance(report, CategoryReport)
    assert report.json["health_score"] == 50 and report.json["status"] == "unhealthy"
    stripe = report.json["services"]["stripe"]
    assert stripe["window"]["checks"] == 2 and stripe["window"]["availability"] == 0.5 and stripe["weight"] == 3

    registry = CollectorRegistry()

    class Collector:
        def collect(self) -> Any:
            return report.prometheus

    registry.register(Collector())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'centinela_dependency_up{critical="true",service="stripe"} 0.0' in text
    assert 'centinela_dependency_up{critical="true",service="database"} 1.0' in text
    assert 'centinela_dependency_availability_ratio{service="stripe"} 0.5' in text
    assert "centinela_health_score 50.0" in text
    assert "centinela_dependency_response_seconds{" in text
    points = {(p.metric, p.tags) for p in report.datadog}
    assert ("health.score", ()) in points
    assert ("health.dependency.up", ("service:stripe", "critical:true")) in points
    assert ("health.circuit.open", ("service:stripe", "critical:true")) in points


def test_results_and_events_are_purged_by_the_retention_job(
    make_app: Callable[..., Any], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    application = make_app(checks({"name": "search", "type": "http", "url": http_server.url}))
    monitoring = application.extensions["centinela"]
    http_server.respond(500)
    run_round(application)  # one result, one "down" event
    clock.advance(31 * 86400)
    removed = monitoring.services.purge_expired()
    assert removed["health_results"] == 2  # database and search, after METRICS_RETENTION_DAYS
    assert removed["health_events"] == 0  # events stay for INCIDENT_RETENTION_DAYS
    clock.advance(365 * 86400)
    assert monitoring.services.purge_expired()["health_events"] == 1


def test_the_round_is_a_global_scheduler_job(monitoring: Any) -> None:
    job = monitoring.scheduler.jobs["health_checks"]
    assert (job.scope, job.interval) == ("global", 30)
    assert monitoring.scheduler.run_global("health_checks") is False  # not the leader: nothing ran
    assert monitoring.scheduler.lease.try_acquire()
    assert monitoring.scheduler.run_global("health_checks") is True
    assert monitoring.health.snapshot().services["database"].status == "healthy"


def test_under_gunicorn_the_leader_runs_the_first_round_at_start(
    gunicorn_server: Callable[..., Any], http_server: RecordingHTTPServer
) -> None:
    server = gunicorn_server(
        {"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY,
         **checks({"name": "search", "type": "http", "url": http_server.url + "/h"})},
        workers=3,
    )
    http_server.wait_for(1, timeout=15)  # the first round, right at start rather than 30 s later
    deadline = time.monotonic() + 15
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:  # the round is saved once every check has answered
        body = requests.get(server.url + CHECK, timeout=5).json()
        if body["status"] != "unknown":
            break
        time.sleep(0.05)
    assert body["status"] == "healthy" and body["services"]["search"]["status"] == "healthy"
    # Every worker answers the same, from the store; and only one process ran the checks.
    answers = {requests.get(server.url + CHECK, timeout=5).text for _ in range(12)}
    assert len(answers) == 1
    assert len(http_server.requests) == 1
