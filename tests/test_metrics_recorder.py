"""The request path: what the middleware records (route templates, status, internal flag,
unhandled exceptions), the cardinality bound, and host apps that call Monitoring(app)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, abort
from werkzeug.test import EnvironBuilder

from monitoring.api.middleware import install_request_hooks, is_internal_endpoint, route_template
from monitoring.clock import ManualClock, SystemClock
from monitoring.extension import Monitoring
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.recorder import OVERFLOW_ROUTE, UNMATCHED_ROUTE, RequestRecorder, RollupKey
from monitoring.metrics.rollups import RequestRollups
from monitoring.settings import Settings
from tests.conftest import METRICS_HEADERS


def drained(recorder: RequestRecorder) -> dict[tuple[str, str, int, bool], int]:
    """(method, route, status class, internal) -> count, over every pending minute."""
    counts: dict[tuple[str, str, int, bool], int] = {}
    for key, aggregate in recorder.drain().items():
        assert aggregate.count == sum(aggregate.status)
        for cls, n in enumerate(aggregate.status):
            if n:
                short = (key.method, key.route, cls, key.internal)
                counts[short] = counts.get(short, 0) + n
    return counts


def ticket_app(clock: ManualClock) -> tuple[Flask, RequestRecorder]:
    """A bare Flask app (no Monitoring) with only the request hooks: the middleware on its own."""
    app = Flask("tickets")
    recorder = RequestRecorder(clock)
    install_request_hooks(app, recorder)

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"id": ticket_id}

    @app.post("/orders/<order_id>/refund")
    def refund(order_id: str) -> Any:
        abort(409)

    @app.get("/crash")
    def crash() -> Any:
        raise RuntimeError("boom")

    return app, recorder


# --- route templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, template",
    [
        ("/tickets/<int:ticket_id>", "/tickets/<ticket_id>"),
        ("/orders/<order_id>/refund", "/orders/<order_id>/refund"),
        ("/files/<path:name>", "/files/<name>"),
        ("/a/<string(length=2):code>/b", "/a/<code>/b"),
        ("/plain", "/plain"),
    ],
)
def test_route_template_drops_converters(rule: str, template: str) -> None:
    assert route_template(rule) == template


@pytest.mark.parametrize(
    "endpoint, internal",
    [
        ("centinela_metrics.metrics", True),
        ("centinela_health.live", True),
        ("centinela_openapi.openapi_document", True),
        ("tickets", False),
        ("health.live", False),  # a host blueprint of its own named "health"
        (None, False),
    ],
)
def test_internal_endpoints_are_centinelas_blueprints(endpoint: str | None, internal: bool) -> None:
    assert is_internal_endpoint(endpoint) is internal


def test_requests_are_recorded_under_the_rule_template_never_the_raw_path(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)
    client = app.test_client()
    for ticket_id in range(500):
        assert client.get(f"/tickets/{ticket_id}").status_code == 200
    counts = drained(recorder)
    assert counts == {("GET", "/tickets/<ticket_id>", 2, False): 500}


def test_unmatched_paths_share_one_route_and_status_classes_are_kept(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)
    client = app.test_client()
    for i in range(300):
        assert client.get(f"/no/such/{i}/page?email=someone{i}@example.com").status_code == 404
    assert client.post("/tickets/1").status_code == 405  # the path matches, the method does not
    assert client.post("/orders/A-17/refund").status_code == 409
    counts = drained(recorder)
    assert counts == {
        ("GET", UNMATCHED_ROUTE, 4, False): 300,
        ("POST", UNMATCHED_ROUTE, 4, False): 1,
        ("POST", "/orders/<order_id>/refund", 4, False): 1,
    }


def test_an_unhandled_exception_counts_as_a_500(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: Flask answers 500 itself
    client = app.test_client()
    assert client.get("/crash").status_code == 500
    assert drained(recorder) == {("GET", "/crash", 5, False): 1}


def test_an_exception_that_escapes_flask_is_recorded_as_a_500_too(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)
    app.testing = True  # the exception propagates out of Flask: no after_request ever runs
    client = app.test_client()
    with pytest.raises(RuntimeError):
        client.get("/crash")
    assert drained(recorder) == {("GET", "/crash", 5, False): 1}


def test_the_middleware_leaves_nothing_in_the_wsgi_environ(clock: ManualClock) -> None:
    """A host's code that copies or logs the environ finds nothing of Centinela's in it, during
    or after the request."""
    app, recorder = ticket_app(clock)
    seen: list[set[str]] = []

    @app.after_request
    def look(response: Any) -> Any:
        from flask import request

        seen.append(set(request.environ))
        return response

    environ = EnvironBuilder(path="/tickets/7").get_environ()
    before = set(environ)
    statuses: list[str] = []
    for _ in app(environ, lambda status, headers, exc_info=None: statuses.append(status)):
        pass
    assert statuses == ["200 OK"]
    assert not [key for key in set(environ) | seen[0] if key.startswith("centinela")]
    assert set(environ) - before <= {"werkzeug.request"}  # Flask's own
    assert drained(recorder) == {("GET", "/tickets/<ticket_id>", 2, False): 1}


def test_a_failing_after_request_hook_of_the_app_is_recorded_as_a_500(clock: ManualClock) -> None:
    app = Flask("hooked")

    @app.after_request
    def broken_hook(response: Any) -> Any:
        raise RuntimeError("hook bug")

    install_request_hooks(app, recorder := RequestRecorder(clock))

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"id": ticket_id}

    assert app.test_client().get("/tickets/9").status_code == 500
    assert drained(recorder) == {("GET", "/tickets/<ticket_id>", 5, False): 1}


def test_the_status_recorded_is_the_one_sent_after_every_hook_of_the_app(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)

    @app.after_request
    def accepted_instead(response: Any) -> Any:  # the app changes the status: that is what is sent and recorded
        response.status_code = 202
        return response

    assert app.test_client().get("/tickets/3").status_code == 202
    assert drained(recorder) == {("GET", "/tickets/<ticket_id>", 2, False): 1}


def test_the_servers_start_response_is_called_as_flask_calls_it(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)
    calls: list[tuple[str, int]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> Callable[[bytes], object]:  # no exc_info
        calls.append((status, len(headers)))
        return lambda data: None

    environ = EnvironBuilder(path="/tickets/5", method="GET").get_environ()
    assert b"".join(app(environ, start_response))
    assert calls[0][0] == "200 OK"
    assert drained(recorder) == {("GET", "/tickets/<ticket_id>", 2, False): 1}


def test_durations_are_measured(clock: ManualClock) -> None:
    app, recorder = ticket_app(clock)

    @app.get("/slow")
    def slow() -> Any:
        threading.Event().wait(0.03)  # the handler itself takes 30 ms: that is what we measure
        return "ok"

    app.test_client().get("/slow")
    (aggregate,) = recorder.drain().values()
    assert 0.03 <= aggregate.histogram.max < 1.0


def test_a_failing_recorder_never_breaks_the_response(clock: ManualClock) -> None:
    app = Flask("fragile")

    class BrokenRecorder(RequestRecorder):
        def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("recorder bug")

    install_request_hooks(app, BrokenRecorder(clock))

    @app.get("/")
    def index() -> Any:
        return "fine"

    response = app.test_client().get("/")
    assert response.status_code == 200 and response.get_data(as_text=True) == "fine"


# --- the recorder itself ------------------------------------------------------------------


def test_samples_are_keyed_by_the_minute_they_were_taken_in(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    clock.set(1_767_225_600.0 + 59.5)
    recorder.record("GET", "/a", 200, 0.010)
    clock.advance(1.0)  # next minute, same flush interval
    recorder.record("GET", "/a", 200, 0.020)
    entries = recorder.drain()
    assert sorted((k.minute, h.count) for k, h in entries.items()) == [
        (1_767_225_600.0, 1),
        (1_767_225_660.0, 1),
    ]
    assert recorder.drain() == {}


def test_on_the_wall_clock_a_sample_lands_in_the_current_minute() -> None:
    import time

    recorder = RequestRecorder(SystemClock())  # reads time.time itself: the request path's shortcut
    before = time.time()
    recorder.record("GET", "/a", 200, 0.010)
    after = time.time()
    (key,) = recorder.drain()
    assert key.minute in {before - before % 60, after - after % 60}


def test_methods_and_statuses_are_normalised(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    recorder.record("BREW", "/pot", 418, 0.001)
    recorder.record("PROPFIND", "/pot", 207, 0.001)
    recorder.record("GET", "/pot", 999, 0.001)
    assert drained(recorder) == {("OTHER", "/pot", 4, False): 1, ("OTHER", "/pot", 2, False): 1,
                                 ("GET", "/pot", 0, False): 1}


def test_the_number_of_keys_is_bounded_whatever_the_callers_pass(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock, max_keys=50)
    for i in range(5_000):  # a caller passing raw paths by mistake
        recorder.record("GET", f"/tickets/{i}", 200, 0.001)
    assert recorder.pending_keys <= 51
    entries = recorder.drain()
    assert sum(h.count for h in entries.values()) == 5_000  # nothing is lost, only folded
    assert sum(h.count for k, h in entries.items() if k.route == OVERFLOW_ROUTE) == 5_000 - 50


def test_a_very_long_route_is_cut(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    recorder.record("GET", "/x" * 400, 200, 0.001)
    (key,) = recorder.drain()
    assert len(key.route) == 255


def test_restore_puts_a_failed_flush_back_with_what_arrived_meanwhile(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    recorder.record("GET", "/a", 200, 0.01)
    taken = recorder.drain()
    recorder.record("GET", "/a", 200, 0.02)
    recorder.restore(taken)
    (aggregate,) = recorder.drain().values()
    assert aggregate.count == 2 and aggregate.status[2] == 2


def test_recording_from_many_threads_loses_nothing(clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    flushed: list[dict[RollupKey, Any]] = []
    stop = threading.Event()

    def flusher() -> None:  # the scheduler thread swapping the aggregate out meanwhile
        while not stop.is_set():
            flushed.append(recorder.drain())

    def worker() -> None:
        for _ in range(5_000):
            recorder.record("GET", "/a", 200, 0.001)

    drain_thread = threading.Thread(target=flusher)
    drain_thread.start()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    drain_thread.join()
    flushed.append(recorder.drain())
    assert sum(h.count for batch in flushed for h in batch.values()) == 20_000


# --- the service and host apps ------------------------------------------------------------


def test_the_service_records_its_own_endpoints_as_internal(app: Any, client: Any) -> None:
    client.get("/api/health/live")
    client.get("/api/monitoring/metrics", headers=METRICS_HEADERS)
    client.get("/api/openapi.json")
    client.get("/api/monitoring/metrics")  # 401
    counts = drained(app.extensions["centinela"].services.metrics.recorder)
    assert counts == {
        ("GET", "/api/health/live", 2, True): 1,
        ("GET", "/api/monitoring/metrics", 2, True): 1,
        ("GET", "/api/openapi.json", 2, True): 1,
        ("GET", "/api/monitoring/metrics", 4, True): 1,
    }


def test_rate_limited_requests_are_timed_too(make_settings: Callable[..., Settings], clock: ManualClock) -> None:
    from app import create_app

    app = create_app(make_settings({"RATELIMIT_HEALTH": "2/minute"}), clock=clock)
    client = app.test_client()
    statuses = [client.get("/api/health/live").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert drained(app.extensions["centinela"].services.metrics.recorder) == {
        ("GET", "/api/health/live", 2, True): 2,
        ("GET", "/api/health/live", 4, True): 1,
    }
    app.extensions["centinela"].shutdown()


def test_a_host_app_calling_monitoring_gets_its_requests_recorded_and_reported(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    host = Flask("festival")

    @host.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"id": ticket_id}

    @host.post("/checkout")
    def checkout() -> Any:
        raise RuntimeError("payment provider exploded")

    monitoring = Monitoring(host, settings=make_settings(), clock=clock)
    client = host.test_client()
    for ticket_id in range(40):
        client.get(f"/tickets/{ticket_id}")
    assert client.post("/checkout").status_code == 500
    client.get("/api/health/live")
    monitoring.scheduler.run_process("metrics_flush")
    clock.advance(10)

    body = client.get("/api/monitoring/metrics?category=performance&window=5m", headers=METRICS_HEADERS).get_json()
    performance = body["performance"]
    assert performance["requests.count"] == 41  # the health probe is internal: left out
    assert performance["errors.count"] == 1 and performance["status"]["5xx"] == 1
    assert performance["scope"]["internal"] == "excluded" and performance["scope"]["internalRequests"] == 1
    routes = {(r["method"], r["route"]): r for r in performance["routes"]}
    assert routes[("GET", "/tickets/<ticket_id>")]["count"] == 40
    assert routes[("POST", "/checkout")]["errors"] == 1

    # the same figures straight from the store, without HTTP
    figures = RequestRollups(monitoring.store, clock).figures(TimeWindow(clock.now() - 300, clock.now(), "5m"))
    assert figures.count == 41
    monitoring.shutdown()
    monitoring.store.dispose()


def test_monitoring_adds_no_hook_to_the_host_app(make_settings: Callable[..., Settings]) -> None:
    """A host's own requests run none of Centinela's hooks (guards, rate limits, CORS, body limit,
    JSON errors are its blueprints'): the WSGI wrapper is all they pay."""
    host = Flask("shop")
    monitoring = Monitoring(host, settings=make_settings())
    app_wide = [host.before_request_funcs, host.after_request_funcs, host.teardown_request_funcs,
                host.url_value_preprocessors, host.url_default_functions, host.error_handler_spec]
    assert all(None not in hooks for hooks in app_wide)
    assert host.teardown_appcontext_funcs == [] and host.template_context_processors[None] == Flask("bare").template_context_processors[None]
    monitoring.shutdown()
    monitoring.store.dispose()


def test_worker_exit_flushes_what_the_scheduler_did_not(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    from app import create_app

    app = create_app(make_settings(), clock=clock)
    client = app.test_client()
    for _ in range(7):
        client.get("/api/health/live")
    monitoring = app.extensions["centinela"]
    monitoring.shutdown()  # what gunicorn's worker_exit and atexit call
    figures = RequestRollups(monitoring.store, clock).figures(
        TimeWindow(clock.now() - 60, clock.now() + 1, "1m"), include_internal=True
    )
    assert figures.count == 7
    monitoring.store.dispose()
