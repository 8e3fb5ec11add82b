"""Cardinality bounds: ten thousand distinct routes from a real SDK's spans, or services past the
bound, fold into <other>; the names seen first are kept."""
from __future__ import annotations

import threading

import pytest

from monitoring.clock import ManualClock
from monitoring.ingest.cardinality import (
    DEFAULT_CARDINALITY,
    OTHER_SERVICE,
    CardinalityBounds,
    CardinalityGuard,
)
from monitoring.ingest.otlp_traces import decode_traces
from monitoring.ingest.routes import OTHER_ROUTE, UNMATCHED_ROUTE
from tests.support.otel_sdk import NANOS, SpanRecorder


def test_defaults_are_the_documented_ones() -> None:
    assert (DEFAULT_CARDINALITY.max_services, DEFAULT_CARDINALITY.max_routes_per_service) == (20, 250)
    with pytest.raises(ValueError):
        CardinalityBounds(max_services=0)


def test_ten_thousand_distinct_routes_are_capped() -> None:
    clock = ManualClock()
    recorder = SpanRecorder("shop")
    start = int(clock.now() * NANOS) - 60 * NANOS
    for i in range(10_000):  # an instrumentation bug: raw paths in http.route
        recorder.request("GET", f"/tickets/{i}", 200, start + i * 1000, 1_000_000)
    batch = decode_traces(recorder.otlp_bytes(), "application/x-protobuf", clock=clock)
    assert len(batch.requests) == 10_000
    guard = CardinalityGuard()
    admitted = [guard.admit_record(request) for request in batch.requests]
    routes = {request.route for request in admitted}
    assert len(routes) == 251 and OTHER_ROUTE in routes
    assert [r.route for r in admitted[:250]] == [f"/tickets/{i}" for i in range(250)]  # first come, first kept
    assert sum(r.route == OTHER_ROUTE for r in admitted) == 10_000 - 250
    assert guard.folded == 10_000 - 250
    # Nothing was lost: every request is still counted, under <other>.
    assert len(admitted) == 10_000


def test_services_past_the_bound_become_other_with_their_own_route_bound() -> None:
    guard = CardinalityGuard(CardinalityBounds(max_services=2, max_routes_per_service=3))
    assert guard.admit("shop", "/a") == ("shop", "/a")
    assert guard.admit("box-office", "/a") == ("box-office", "/a")
    assert guard.admit("intruder-1", "/x") == (OTHER_SERVICE, "/x")
    assert guard.admit("intruder-2", "/y") == (OTHER_SERVICE, "/y")
    assert guard.admit("shop", "/b") == ("shop", "/b")  # a known service still adds routes
    assert guard.services == 3  # the two admitted and <other>


def test_reserved_routes_never_count_against_the_bound() -> None:
    guard = CardinalityGuard(CardinalityBounds(max_services=1, max_routes_per_service=1))
    assert guard.admit("shop", UNMATCHED_ROUTE) == ("shop", UNMATCHED_ROUTE)
    assert guard.admit("shop", "/a") == ("shop", "/a")
    assert guard.admit("shop", "/b") == ("shop", OTHER_ROUTE)
    assert guard.admit("shop", UNMATCHED_ROUTE) == ("shop", UNMATCHED_ROUTE)
    assert guard.admit("shop", "/a") == ("shop", "/a")


def test_the_bound_holds_under_concurrent_admission() -> None:
    guard = CardinalityGuard(CardinalityBounds(max_services=5, max_routes_per_service=50))

    def admit(worker: int) -> None:
        for i in range(2_000):
            guard.admit(f"service-{(worker + i) % 9}", f"/r/{i}")

    threads = [threading.Thread(target=admit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert guard.services <= 6
    for service in [f"service-{n}" for n in range(9)] + [OTHER_SERVICE]:
        seen = {guard.admit(service, f"/r/{i}")[1] for i in range(2_000)}
        assert len(seen - {OTHER_ROUTE}) <= 50
