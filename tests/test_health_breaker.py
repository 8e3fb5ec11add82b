"""Circuit breakers in the store, driven by an injected clock: closed -> open -> half-open -> closed,
one trial at a time across threads and "processes", and the events every transition leaves."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitoring.clock import ManualClock
from monitoring.health.circuit import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerPolicy,
    CircuitBreakers,
    CircuitOpenError,
)
from monitoring.health.events import list_events
from monitoring.health.service import HealthService
from monitoring.settings import Settings
from monitoring.store.database import Store
from tests.support.receiver import RecordingHTTPServer

POLICY = BreakerPolicy(failure_threshold=5, reset_timeout=30.0, success_threshold=2)


@pytest.fixture
def store(store_url: str, clock: ManualClock) -> Iterator[Store]:
    store = Store(store_url, clock)
    store.migrate()
    yield store
    store.dispose()


@pytest.fixture
def breakers(store: Store, clock: ManualClock) -> CircuitBreakers:
    return CircuitBreakers(store, clock, POLICY)


def fail(breakers: CircuitBreakers, service: str, times: int) -> list[str | None]:
    return [breakers.record_failure(breakers.acquire(service), "HTTP 500") for _ in range(times)]


def transitions(store: Store, service: str) -> list[tuple[str, str, str]]:
    return [(e.kind, e.from_status, e.to_status) for e in list_events(store, service=service)]


def test_opens_after_n_consecutive_failures(breakers: CircuitBreakers, store: Store, clock: ManualClock) -> None:
    assert fail(breakers, "stripe", 4) == [None] * 4
    assert breakers.state("stripe").state == CLOSED and breakers.state("stripe").failures == 4
    assert breakers.record_failure(breakers.acquire("stripe"), "HTTP 500") == OPEN
    state = breakers.state("stripe")
    assert (state.state, state.opened_at, state.next_trial_at) == (OPEN, clock.now(), clock.now() + 30)
    (event,) = list_events(store, service="stripe")
    assert (event.kind, event.from_status, event.to_status, event.at) == ("breaker_opened", CLOSED, OPEN, clock.now())
    assert event.detail == {"failures": 5, "error": "HTTP 500"}


def test_a_success_resets_the_consecutive_failures(breakers: CircuitBreakers) -> None:
    fail(breakers, "stripe", 4)
    breakers.record_success(breakers.acquire("stripe"))
    fail(breakers, "stripe", 4)
    assert breakers.state("stripe").state == CLOSED


def test_no_calls_while_open_then_one_trial_after_the_reset_timeout(breakers: CircuitBreakers, clock: ManualClock) -> None:
    fail(breakers, "stripe", 5)
    clock.advance(29.5)
    with pytest.raises(CircuitOpenError) as caught:
        breakers.acquire("stripe")
    assert caught.value.state == OPEN and caught.value.retry_after == pytest.approx(0.5)
    assert "is open: next trial in 0.5s" in str(caught.value)
    clock.advance(0.5)
    trial = breakers.acquire("stripe")
    assert trial.is_trial and breakers.state("stripe").state == HALF_OPEN
    with pytest.raises(CircuitOpenError, match="a trial call is in progress"):
        breakers.acquire("stripe")


def test_closes_after_m_successful_trials(breakers: CircuitBreakers, store: Store, clock: ManualClock) -> None:
    fail(breakers, "stripe", 5)
    clock.advance(30)
    assert breakers.record_success(breakers.acquire("stripe")) is None  # 1 of 2
    assert breakers.state("stripe").state == HALF_OPEN
    assert breakers.record_success(breakers.acquire("stripe")) == CLOSED  # 2 of 2
    state = breakers.state("stripe")
    assert (state.state, state.failures, state.opened_at) == (CLOSED, 0, None)
    assert not breakers.acquire("stripe").is_trial
    assert transitions(store, "stripe") == [
        ("breaker_opened", CLOSED, OPEN),
        ("breaker_half_open", OPEN, HALF_OPEN),
        ("breaker_closed", HALF_OPEN, CLOSED),
    ]


def test_a_failed_trial_reopens_for_another_reset_timeout(breakers: CircuitBreakers, store: Store, clock: ManualClock) -> None:
    fail(breakers, "stripe", 5)
    clock.advance(30)
    breakers.record_success(breakers.acquire("stripe"))
    assert breakers.record_failure(breakers.acquire("stripe"), "timed out after 5s") == OPEN
    state = breakers.state("stripe")
    assert (state.state, state.next_trial_at, state.successes) == (OPEN, clock.now() + 30, 0)
    with pytest.raises(CircuitOpenError):
        breakers.acquire("stripe")
    assert transitions(store, "stripe")[-1] == ("breaker_opened", HALF_OPEN, OPEN)
    # the successes before the failed trial do not count towards closing
    clock.advance(30)
    breakers.record_success(breakers.acquire("stripe"))
    assert breakers.state("stripe").state == HALF_OPEN


def test_one_trial_at_a_time_under_concurrent_callers(store: Store, clock: ManualClock) -> None:
    # Each thread has its own CircuitBreakers, as separate workers or hosts would: only the store is shared.
    callers = 8
    opener = CircuitBreakers(store, clock, POLICY)
    fail(opener, "stripe", 5)
    clock.advance(30)
    barrier = threading.Barrier(callers)
    permits: list[Any] = []
    refusals: list[CircuitOpenError] = []
    lock = threading.Lock()

    def call() -> None:
        mine = CircuitBreakers(store, clock, POLICY)
        mine.state("stripe")  # warm the connection so that every thread reaches acquire() together
        barrier.wait()
        try:
            permit = mine.acquire("stripe")
            with lock:
                permits.append(permit)
        except CircuitOpenError as exc:
            with lock:
                refusals.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(permits) == 1 and permits[0].is_trial
    assert len(refusals) == callers - 1 and {r.state for r in refusals} == {HALF_OPEN}
    assert [e.kind for e in list_events(store, service="stripe")].count("breaker_half_open") == 1
    # the trial ends: the next caller gets the next trial
    opener.record_success(permits[0])
    assert opener.acquire("stripe").is_trial


def test_a_trial_whose_caller_vanished_is_given_up(breakers: CircuitBreakers, clock: ManualClock) -> None:
    fail(breakers, "stripe", 5)
    clock.advance(30)
    lost = breakers.acquire("stripe")  # the worker holding it is killed mid-call
    clock.advance(POLICY.trial_timeout - 1)
    with pytest.raises(CircuitOpenError):
        breakers.acquire("stripe")
    clock.advance(1)
    retry = breakers.acquire("stripe")
    assert retry.is_trial and retry.trial_token != lost.trial_token
    # the vanished caller's late verdict no longer counts
    assert breakers.record_failure(lost, "late") is None
    assert breakers.state("stripe").state == HALF_OPEN


def test_guard_context_manager_for_host_code(breakers: CircuitBreakers, clock: ManualClock) -> None:
    class CardDeclined(Exception):
        pass

    for _ in range(5):
        with pytest.raises(CardDeclined):  # the dependency answered: not a failure
            with breakers.guard("stripe", ignore=(CardDeclined,)):
                raise CardDeclined()
    assert breakers.state("stripe").failures == 0
    for _ in range(5):
        with pytest.raises(ConnectionError):
            with breakers.guard("stripe"):
                raise ConnectionError("down")
    called = []
    with pytest.raises(CircuitOpenError):
        with breakers.guard("stripe"):
            called.append(1)
    assert called == []
    clock.advance(30)
    with pytest.raises(KeyboardInterrupt):  # an interrupted trial gives the trial back, no verdict
        with breakers.guard("stripe"):
            raise KeyboardInterrupt()
    state = breakers.state("stripe")
    assert state.state == HALF_OPEN and not state.trial_in_progress
    for _ in range(2):
        with breakers.guard("stripe"):
            pass
    assert breakers.state("stripe").state == CLOSED


def test_each_app_has_its_own_breakers(make_app: Any, tmp_path: Any) -> None:
    """The breaker hangs off the app's extension, in that app's store: two apps never share one."""
    import monitoring.health as health

    first = make_app().extensions["centinela"]
    second = make_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"}).extensions["centinela"]
    for _ in range(5):
        with pytest.raises(RuntimeError):
            with first.breaker("brevo"):
                raise RuntimeError("smtp down")
    with pytest.raises(health.CircuitOpenError):
        with first.breaker("brevo"):
            pass
    assert first.health.breakers.state("brevo").state == OPEN
    assert second.health.breakers.state("brevo").state == CLOSED
    with second.breaker("brevo"):
        pass


def test_host_app_guards_its_call_through_the_extension(app: Any, monitoring: Any) -> None:
    """The issue's spelling: ``monitoring = Monitoring(app); with monitoring.breaker("stripe"): ...``."""
    import monitoring.health as health

    for _ in range(5):
        with pytest.raises(ConnectionError):
            with monitoring.breaker("stripe"):
                raise ConnectionError("stripe unreachable")
    calls = []
    with pytest.raises(health.CircuitOpenError):
        with monitoring.breaker("stripe"):
            calls.append(1)
    assert calls == []


# --- the health checks go through the breakers ---------------------------------------------------


@pytest.fixture
def stripe_service(store: Store, clock: ManualClock) -> Iterator[tuple[HealthService, RecordingHTTPServer]]:
    with RecordingHTTPServer() as server:
        settings = Settings.from_env(
            {"DATABASE_URL": store.url, "STRIPE_SECRET_KEY": "sk_test_breaker", "STRIPE_API_BASE": server.url}
        )
        yield HealthService(store, clock, settings), server


def stripe_result(service: HealthService) -> Any:
    return {r.service: r for r in service.run_round()}["stripe"]


def test_checks_open_the_breaker_then_stop_calling_then_recover(
    stripe_service: tuple[HealthService, RecordingHTTPServer], clock: ManualClock
) -> None:
    service, server = stripe_service
    server.respond(500)
    for _ in range(5):
        assert stripe_result(service).error == "HTTP 500"
        clock.advance(10)
    assert len(server.requests) == 5
    assert service.breakers.state("stripe").state == OPEN
    # while open: not called, reported unhealthy with the time until the next trial
    clock.advance(10)
    result = stripe_result(service)
    # the refusal keeps the error that opened the breaker
    assert (result.status, result.error, result.response_time_ms) == (
        "unhealthy", "circuit open after HTTP 500: not called", None)
    assert len(server.requests) == 5
    shown = service.snapshot().services["stripe"]
    assert shown.circuit is not None and shown.circuit.next_trial_in(clock.now()) == pytest.approx(10)
    # after the reset timeout: one trial, which fails and reopens
    clock.advance(10)
    assert stripe_result(service).error == "HTTP 500"
    assert len(server.requests) == 6 and service.breakers.state("stripe").state == OPEN
    # the dependency comes back: two successful trials close the breaker
    server.respond(200)
    clock.advance(30)
    assert stripe_result(service).status == "healthy"
    assert service.breakers.state("stripe").state == HALF_OPEN
    clock.advance(10)
    assert stripe_result(service).status == "healthy"
    assert service.breakers.state("stripe").state == CLOSED
    kinds = [(e.kind, e.to_status) for e in list_events(service.store, service="stripe")]
    assert kinds == [
        ("down", "unhealthy"),
        ("breaker_opened", OPEN),
        ("breaker_half_open", HALF_OPEN),
        ("breaker_opened", OPEN),
        ("breaker_half_open", HALF_OPEN),
        ("recovered", "healthy"),
        ("breaker_closed", CLOSED),
    ]
    detail = list_events(service.store, service="stripe", kinds=["recovered"])[0].detail
    assert json.dumps(detail) and detail["error"] == ""


def test_the_host_apps_failures_open_the_breaker_the_check_uses(
    stripe_service: tuple[HealthService, RecordingHTTPServer],
) -> None:
    service, server = stripe_service
    for _ in range(5):
        with pytest.raises(TimeoutError):
            with service.breaker("stripe"):
                raise TimeoutError()
    assert stripe_result(service).error == "circuit open after TimeoutError: not called"  # what the host app saw
    assert server.requests == []


def test_a_degraded_answer_counts_as_success_for_the_breaker(
    stripe_service: tuple[HealthService, RecordingHTTPServer],
) -> None:
    service, server = stripe_service
    fail(service.breakers, "stripe", 4)
    server.respond(429)
    assert stripe_result(service).status == "degraded"
    assert service.breakers.state("stripe").failures == 0


def test_policy_comes_from_the_settings(make_settings: Callable[..., Settings], clock: ManualClock) -> None:
    settings = make_settings(
        {"BREAKER_FAILURE_THRESHOLD": "2", "BREAKER_RESET_TIMEOUT": "5", "BREAKER_SUCCESS_THRESHOLD": "1"}
    )
    store = Store(settings.database_url, clock)
    store.migrate()
    try:
        service = HealthService(store, clock, settings)
        assert fail(service.breakers, "x", 2) == [None, OPEN]
        clock.advance(5)
        assert service.breakers.record_success(service.breakers.acquire("x")) == CLOSED
    finally:
        store.dispose()


def test_a_half_open_breaker_is_never_reported_as_open(
    stripe_service: tuple[HealthService, RecordingHTTPServer], clock: ManualClock
) -> None:
    from monitoring.health.report import public_error

    service, server = stripe_service
    for _ in range(5):
        with pytest.raises(TimeoutError):
            with service.breaker("stripe"):
                raise TimeoutError()
    clock.advance(31)  # past the reset timeout: the next caller gets the trial
    with service.breaker("stripe"):  # the host app's call is the trial, and it is still under way
        result = stripe_result(service)
        assert result.error == "circuit half-open: another caller holds the trial call; not called"
        shown = service.snapshot().services["stripe"]
        assert shown.circuit is not None and shown.circuit.state == HALF_OPEN
        assert "circuit open" not in (public_error(shown, clock.now()) or "")
    assert server.requests == []  # the round never called it beside the trial
