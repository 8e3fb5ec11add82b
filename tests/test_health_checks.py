"""Health checks against real local servers: each status, timeouts, parallel rounds, custom checks,
the database check on SQLite and PostgreSQL, Stripe/Brevo auth, and HEALTH_CHECKS validation."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitoring.clock import ManualClock
from monitoring.health.definitions import HttpCheckDefinition, TcpCheckDefinition
from monitoring.health.events import list_events
from monitoring.health.service import HealthService
from monitoring.settings import ConfigError, Settings
from monitoring.store.database import Store
from monitoring.store.health_tables import health_events, health_results, health_status
from tests.support.receiver import RecordingHTTPServer, Response, SwitchableTCPServer, free_port

ROOT = Path(__file__).resolve().parents[1]
STRIPE_KEY = "sk_test_51HealthCheckSecretValue0123456789"
BREVO_KEY = "xkeysib-0123456789abcdef0123456789abcdef-HealthCheck"


@pytest.fixture
def http_server() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture
def tcp_server() -> Iterator[SwitchableTCPServer]:
    with SwitchableTCPServer() as server:
        yield server


@pytest.fixture
def make_service(clock: ManualClock, sqlite_url: str) -> Iterator[Callable[..., HealthService]]:
    stores: list[Store] = []

    def build(env: dict[str, str] | None = None, url: str | None = None) -> HealthService:
        url = url or sqlite_url
        settings = Settings.from_env({"DATABASE_URL": url, **(env or {})})
        store = Store(url, clock)
        store.migrate()
        stores.append(store)
        # A registry of its own: custom checks registered by one test never leak into another.
        return HealthService(store, clock, settings)

    yield build
    for store in stores:
        store.dispose()


def checks_env(*items: dict[str, Any]) -> dict[str, str]:
    return {"HEALTH_CHECKS": json.dumps(list(items))}


def by_name(results: list[Any]) -> dict[str, Any]:
    return {r.service: r for r in results}


# --- http checks -------------------------------------------------------------------------------


def test_http_check_reports_each_status_from_a_real_server(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    service = make_service(
        checks_env({"name": "search", "type": "http", "url": http_server.url + "/health", "timeout": 0.5,
                    "latency_threshold_ms": 150})
    )

    def search() -> Any:
        return by_name(service.run_round())["search"]

    http_server.respond(200)
    assert (search().status, search().error) == ("healthy", "")

    http_server.respond_sequence([Response(200, delay=0.3)])  # answers, but slower than 150 ms
    slow = search()
    assert slow.status == "degraded" and slow.response_time_ms >= 300
    assert "above the 150 ms threshold" in slow.error

    http_server.respond(429)
    assert (search().status, search().error) == ("degraded", "HTTP 429 (rate limited)")

    http_server.respond(500)
    failed = search()
    assert (failed.status, failed.error) == ("unhealthy", "HTTP 500")
    assert failed.response_time_ms is not None

    http_server.hang(5)
    started = time.perf_counter()
    hung = search()
    assert (hung.status, hung.error) == ("unhealthy", "timed out after 0.5s")
    assert time.perf_counter() - started < 2.0

    http_server.respond(200)
    http_server.refuse()
    assert (search().status, search().error) == ("unhealthy", "connection refused")
    http_server.resume()
    assert search().status == "healthy"
    assert all(r.path == "/health" and r.method == "GET" for r in http_server.requests)


def test_http_check_expected_status_is_configurable(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    service = make_service(
        checks_env({"name": "legacy", "type": "http", "url": http_server.url + "/ping", "expected_status": 204})
    )
    http_server.respond(204, b"")
    assert by_name(service.run_round())["legacy"].status == "healthy"
    http_server.respond(200)
    assert by_name(service.run_round())["legacy"].error == "HTTP 200"


def test_http_check_does_not_follow_redirects(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    service = make_service(checks_env({"name": "app", "type": "http", "url": http_server.url + "/health"}))
    http_server.route("/health", 302, b"", {"Location": "/login"})
    assert by_name(service.run_round())["app"].error == "HTTP 302"
    assert [r.path for r in http_server.requests] == ["/health"]


# --- tcp checks --------------------------------------------------------------------------------


def test_tcp_check_accept_refuse_and_timeout(
    make_service: Callable[..., HealthService], tcp_server: SwitchableTCPServer
) -> None:
    service = make_service(
        checks_env({"name": "redis", "type": "tcp", "host": "127.0.0.1", "port": tcp_server.port, "timeout": 0.3})
    )
    healthy = by_name(service.run_round())["redis"]
    assert healthy.status == "healthy" and healthy.response_time_ms is not None
    tcp_server.wait_for_connections(1)

    tcp_server.refuse()
    assert by_name(service.run_round())["redis"].error == "connection refused"

    tcp_server.resume()
    assert tcp_server.hang(saturate=True), "could not make connects time out on this kernel"
    assert by_name(service.run_round())["redis"].error == "timed out after 0.3s"

    tcp_server.accept()
    assert by_name(service.run_round())["redis"].status == "healthy"


# --- rounds --------------------------------------------------------------------------------------


def test_checks_run_in_parallel_each_within_its_own_timeout(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    items = [{"name": f"slow{i}", "type": "http", "url": f"{http_server.url}/{i}", "timeout": 0.4} for i in range(4)]
    for i in range(4):
        http_server.route(f"/{i}", 200, delay=3)  # answers long after the check's timeout
    items.append({"name": "quick", "type": "http", "url": http_server.url + "/quick", "timeout": 2})
    service = make_service(checks_env(*items))
    started = time.perf_counter()
    results = by_name(service.run_round())
    elapsed = time.perf_counter() - started
    assert elapsed < 1.2, f"4 hanging checks of 0.4 s took {elapsed:.2f}s: not parallel"
    assert {results[f"slow{i}"].error for i in range(4)} == {"timed out after 0.4s"}
    assert results["quick"].status == "healthy"


def test_an_unconfigured_dependency_is_not_reported(make_service: Callable[..., HealthService]) -> None:
    service = make_service()
    assert service.service_names() == ["database"]
    assert [r.service for r in service.run_round()] == ["database"]


def test_results_history_and_latest_status_are_stored(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    service = make_service(checks_env({"name": "search", "type": "http", "url": http_server.url + "/h"}))
    service.run_round()
    clock.advance(30)
    http_server.respond(500)
    service.run_round()
    with service.store.read() as conn:
        history = conn.execute(
            select(health_results.c.status, health_results.c.checked_at)
            .where(health_results.c.service == "search")
            .order_by(health_results.c.checked_at)
        ).all()
        latest = conn.execute(select(health_status).where(health_status.c.service == "search")).mappings().one()
    assert [tuple(row) for row in history] == [("healthy", clock.now() - 30), ("unhealthy", clock.now())]
    assert (latest["status"], latest["error"], latest["checked_at"]) == ("unhealthy", "HTTP 500", clock.now())


def test_an_older_result_never_overwrites_a_newer_one(make_service: Callable[..., HealthService], clock: ManualClock) -> None:
    from monitoring.health.results import CheckResult, save_results

    service = make_service()
    newer = CheckResult("database", "healthy", True, "datastore", 1.0, "", clock.now())
    older = CheckResult("database", "unhealthy", True, "datastore", None, "timed out", clock.now() - 5)
    save_results(service.store, [newer])
    assert save_results(service.store, [older]) == []
    assert service.snapshot().services["database"].status == "healthy"


# --- recovery detection ---------------------------------------------------------------------------


def test_down_degraded_and_recovery_are_recorded_as_events(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer, clock: ManualClock
) -> None:
    service = make_service(
        checks_env({"name": "search", "type": "http", "url": http_server.url + "/h", "latency_threshold_ms": 100,
                    "timeout": 1})
    )
    start = clock.now()
    service.run_round()  # healthy first: no event
    clock.advance(30)
    http_server.respond(500)
    service.run_round()  # down
    clock.advance(30)
    service.run_round()  # still down: no second event
    clock.advance(30)
    http_server.respond_sequence([Response(200, delay=0.25)])
    service.run_round()  # answers slowly: degraded
    clock.advance(30)
    http_server.respond(200)
    service.run_round()  # recovered
    events = [(e.kind, e.from_status, e.to_status, e.at - start) for e in list_events(service.store, service="search")]
    assert events == [
        ("down", "healthy", "unhealthy", 30),
        ("degraded", "unhealthy", "degraded", 90),
        ("recovered", "degraded", "healthy", 120),
    ]
    down = list_events(service.store, service="search", kinds=["down"])[0]
    assert down.detail["error"] == "HTTP 500"
    # a time range: [since, until)
    assert [e.kind for e in list_events(service.store, start + 31, start + 121)] == ["degraded", "recovered"]
    assert list_events(service.store, start + 121) == []


def test_a_first_result_that_is_down_is_an_event_from_unknown(
    make_service: Callable[..., HealthService], clock: ManualClock
) -> None:
    service = make_service(checks_env({"name": "gone", "type": "tcp", "host": "127.0.0.1", "port": free_port()}))
    service.run_round()
    (event,) = list_events(service.store, service="gone")
    assert (event.kind, event.from_status, event.to_status, event.at) == ("down", "unknown", "unhealthy", clock.now())


# --- database ---------------------------------------------------------------------------------------


def test_database_check_round_trips_the_store(make_service: Callable[..., HealthService], store_url: str) -> None:
    service = make_service(url=store_url)
    result = by_name(service.run_round())["database"]
    assert result.status == "healthy" and result.critical
    assert 0 < result.response_time_ms < 1000
    assert service.snapshot().services["database"].component_type == "datastore"


def test_database_slower_than_its_threshold_is_degraded(make_service: Callable[..., HealthService], store_url: str) -> None:
    service = make_service({"DB_RESPONSE_THRESHOLD": "0.000001"}, url=store_url)  # no round trip is that fast
    result = by_name(service.run_round())["database"]
    assert result.status == "degraded"
    assert "above the 1e-06 ms threshold" in result.error


def test_database_down_is_unhealthy_without_revealing_the_connection_string(clock: ManualClock, sqlite_url: str) -> None:
    # A store on a PostgreSQL port where nothing listens: the check must say only what kind of failure.
    port = free_port()
    url = f"postgresql://centinela:hunter2@127.0.0.1:{port}/prod"
    settings = Settings.from_env({"DATABASE_URL": url})
    service = HealthService(Store(url, clock), clock, settings)
    probe = service.checks()[0].probe()
    assert (probe.status, probe.error) == ("unhealthy", "connection refused")


# --- stripe and brevo -------------------------------------------------------------------------------


def test_stripe_and_brevo_checks_send_their_auth_headers(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    service = make_service(
        {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": http_server.url,
         "BREVO_API_KEY": BREVO_KEY, "BREVO_API_BASE": http_server.url + "/"}
    )
    results = by_name(service.run_round())
    assert results["stripe"].status == "healthy" and results["brevo"].status == "healthy"
    assert results["stripe"].critical and not results["brevo"].critical
    requests_by_path = {r.path: r for r in http_server.requests}
    assert requests_by_path["/v1/balance"].method == "GET"
    assert requests_by_path["/v1/balance"].header("Authorization") == f"Bearer {STRIPE_KEY}"
    assert requests_by_path["/v3/account"].header("api-key") == BREVO_KEY
    assert requests_by_path["/v3/account"].header("Authorization") is None


def test_stripe_key_never_reaches_stored_error_text(
    make_service: Callable[..., HealthService], http_server: RecordingHTTPServer
) -> None:
    service = make_service(
        {"STRIPE_SECRET_KEY": STRIPE_KEY, "STRIPE_API_BASE": http_server.url,
         "BREVO_API_KEY": BREVO_KEY, "BREVO_API_BASE": http_server.url}
    )
    # Stripe echoes parts of a bad request back; the check must not copy any of it.
    http_server.respond(401, {"error": {"message": f"Invalid API Key provided: {STRIPE_KEY}"}})
    for _ in range(6):  # through the breaker opening, too
        service.run_round()
    with service.store.read() as conn:
        stored = " ".join(
            str(value)
            for table in (health_status, health_results, health_events)
            for row in conn.execute(select(table))
            for value in row
        )
    assert "HTTP 401" in stored
    for secret in (STRIPE_KEY, BREVO_KEY, "sk_test_", "xkeysib", "127.0.0.1", http_server.url):
        assert secret not in stored


def test_unconfigured_stripe_and_brevo_are_not_checked(make_service: Callable[..., HealthService]) -> None:
    service = make_service({"STRIPE_API_BASE": "http://127.0.0.1:9", "BREVO_API_BASE": "http://127.0.0.1:9"})
    assert "stripe" not in service.service_names() and "brevo" not in service.service_names()


# --- custom checks ----------------------------------------------------------------------------------


def test_custom_checks_report_what_the_function_says(make_service: Callable[..., HealthService]) -> None:
    service = make_service()
    answers: dict[str, Any] = {"cache": True, "queue": "degraded", "mail": False, "none": None}
    for name in answers:
        service.register(name, lambda name=name: answers[name], critical=(name == "queue"))

    def boom() -> None:
        raise RuntimeError("cannot reach 10.1.2.3 with password=hunter2")

    service.register("broken", boom)
    results = by_name(service.run_round())
    assert {n: results[n].status for n in answers} == {
        "cache": "healthy", "queue": "degraded", "mail": "unhealthy", "none": "healthy"
    }
    assert results["queue"].critical and not results["cache"].critical
    assert (results["broken"].status, results["broken"].error) == ("unhealthy", "check raised RuntimeError")


def test_a_custom_check_that_hangs_is_cut_off_at_its_timeout_and_not_stacked(
    make_service: Callable[..., HealthService],
) -> None:
    service = make_service()
    release = threading.Event()
    calls: list[int] = []

    def stuck() -> bool:
        calls.append(1)
        release.wait(10)
        return True

    service.register("stuck", stuck, timeout=0.2)
    started = time.perf_counter()
    assert by_name(service.run_round())["stuck"].error == "timed out after 0.2s"
    assert time.perf_counter() - started < 1.5
    # The first call is still blocked: the next round reports that instead of starting another.
    assert by_name(service.run_round())["stuck"].error == "previous check still running"
    assert len(calls) == 1
    release.set()
    deadline = time.monotonic() + 5
    while service._is_in_flight("stuck") and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for a thread we released, not for our scheduler
    assert by_name(service.run_round())["stuck"].status == "healthy"
    assert len(calls) == 2


def test_register_refuses_bad_and_duplicate_names(make_service: Callable[..., HealthService]) -> None:
    service = make_service(checks_env({"name": "search", "type": "tcp", "host": "h", "port": 1}))
    for bad in ("", "Has Space", "x" * 65, "UPPER"):
        with pytest.raises(ValueError, match="must be 1-64 characters"):
            service.register(bad, lambda: True)
    with pytest.raises(ValueError, match="reserved"):
        service.register("stripe", lambda: True)
    with pytest.raises(ValueError, match="already exists"):
        service.register("search", lambda: True)
    service.register("cache", lambda: True)
    with pytest.raises(ValueError, match="already"):
        service.register("cache", lambda: True)
    with pytest.raises(TypeError):
        service.register("other", "not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        service.register("other", lambda: True, timeout=0)
    assert service.unregister("cache") and not service.unregister("cache")


def test_a_check_registered_on_one_app_stays_with_that_app(make_app: Any, tmp_path: Any) -> None:
    """No process-wide registry: two apps in one process keep their own checks."""
    first = make_app()
    second = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"})
    first.extensions["centinela"].health.register("host-cache", lambda: "degraded")
    assert "host-cache" in first.extensions["centinela"].health.service_names()
    assert "host-cache" not in second.extensions["centinela"].health.service_names()
    with pytest.raises(ValueError):
        first.extensions["centinela"].health.register("host-cache", lambda: True)
    results = by_name(first.extensions["centinela"].health.run_round())
    assert results["host-cache"].status == "degraded"
    assert "host-cache" not in by_name(second.extensions["centinela"].health.run_round())


# --- HEALTH_CHECKS at start-up ---------------------------------------------------------------------


def test_health_checks_are_parsed_into_definitions() -> None:
    settings = Settings.from_env(
        checks_env(
            {"name": "search", "type": "http", "url": "https://search.example/health", "critical": True,
             "latency_threshold_ms": 300, "timeout": 2, "expected_status": 204},
            {"name": "redis", "type": "tcp", "host": "redis.example", "port": 6379},
        )
    )
    assert settings.health_checks == [
        HttpCheckDefinition("search", "https://search.example/health", 204, 2.0, True, 300.0),
        TcpCheckDefinition("redis", "redis.example", 6379, 5.0, False, None),
    ]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("[{", "expected a JSON list"),
        ('{"name": "x"}', "expected a JSON list"),
        ("[42]", "item 1: expected a JSON object with name and type"),
        ('[{"type": "tcp"}]', 'item 1: "name" is required'),
        ('[{"name": "Bad Name", "type": "tcp"}]', 'item 1: "name" must be 1-64 characters'),
        ('[{"name": "database", "type": "tcp"}]', 'item 1 ("database"): "name" is reserved'),
        ('[{"name": "x", "type": "ftp"}]', 'item 1 ("x"): "type" must be "http" or "tcp"'),
        ('[{"name": "x"}]', 'item 1 ("x"): "type" must be "http" or "tcp"'),
        ('[{"name": "x", "type": "http"}]', 'item 1 ("x"): "url" must be an http:// or https:// URL'),
        ('[{"name": "x", "type": "http", "url": "ftp://h/"}]', '"url" must be an http:// or https:// URL'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "expected_status": "200"}]',
         '"expected_status" must be a whole number from 100 to 599'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "timeout": 0}]', '"timeout" must be a number above 0'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "timeout": 21}]', "at most 20"),
        ('[{"name": "x", "type": "http", "url": "http://h/", "critical": "yes"}]', '"critical" must be true or false'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "latency_threshold_ms": -1}]',
         '"latency_threshold_ms" must be a number above 0'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "critcal": true}]', 'unknown field "critcal"'),
        ('[{"name": "x", "type": "http", "url": "http://h/", "port": 80}]', 'unknown field "port"'),
        ('[{"name": "x", "type": "tcp", "port": 80}]', 'item 1 ("x"): "host" must be a host name or address'),
        ('[{"name": "x", "type": "tcp", "host": "h"}]', '"port" is required'),
        ('[{"name": "x", "type": "tcp", "host": "h", "port": 70000}]', '"port" must be a whole number from 1 to 65535'),
        ('[{"name": "x", "type": "tcp", "host": "h", "port": true}]', '"port" must be a whole number'),
        ('[{"name": "x", "type": "tcp", "host": "h", "port": 1}, {"name": "x", "type": "tcp", "host": "h", "port": 2}]',
         'item 2 ("x"): "name" is used by an earlier item'),
    ],
)
def test_bad_health_checks_are_refused_naming_the_item_and_field(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"HEALTH_CHECKS": value})
    message = str(caught.value)
    assert message.startswith("HEALTH_CHECKS=(hidden): ")
    assert expected in message
    assert "\n" not in message


def test_a_bad_health_check_stops_gunicorn_with_one_clear_line(tmp_path: Path) -> None:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    bad = json.dumps([{"name": "search", "type": "http", "url": "https://search.example/h?token=s3cret",
                       "timeout": "fast"}])
    result = subprocess.run(
        [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HEALTH_CHECKS": bad, "VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        'centinela: configuration error: HEALTH_CHECKS=(hidden): item 1 ("search"): '
        '"timeout" must be a number above 0 and at most 20'
    ]
    assert "s3cret" not in result.stderr + result.stdout
