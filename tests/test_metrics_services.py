"""The service dimension in the store (SQLite and PostgreSQL): two services' requests and errors
recorded through the real recorder, tracker and flush, read back per service and combined."""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from monitoring.clock import ManualClock
from monitoring.errors.tracking import ErrorTracker, error_figures, error_services, list_error_groups
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.histogram import RELATIVE_ACCURACY, LatencyHistogram, nearest_rank
from monitoring.metrics.recorder import RequestRecorder, RollupKey
from monitoring.metrics.rollups import MINUTE, RequestRollups, flush_recorder
from monitoring.store.database import Store
from monitoring.store.metrics_tables import DEFAULT_SERVICE


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.dispose()


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[nearest_rank(q, len(ordered)) - 1]


def last(clock: ManualClock, seconds: float) -> TimeWindow:
    return TimeWindow(clock.now() - seconds, clock.now(), "test")


def test_two_services_read_back_per_service_and_combined(store: Store, clock: ManualClock) -> None:
    rng = random.Random(13)
    recorder, rollups = RequestRecorder(clock), RequestRollups(store, clock)
    shop = [rng.lognormvariate(-3.5, 0.5) for _ in range(400)]  # ~30 ms
    search = [rng.lognormvariate(-1.5, 0.4) for _ in range(250)]  # ~220 ms
    for i, seconds in enumerate(shop):
        recorder.record("GET", "/tickets/<id>", 500 if i % 40 == 0 else 200, seconds, service="shop")
    for seconds in search:
        recorder.record("GET", "/tickets/<id>", 200, seconds, service="search")  # the same route, another service
    recorder.record("GET", "/", 200, 0.01)  # an old call site: the default service
    flush_recorder(recorder, rollups)
    clock.advance(MINUTE)

    window = last(clock, 300)
    combined = rollups.figures(window)
    assert combined.count == 651 and combined.errors == 10
    assert {(r.service, r.route): r.count for r in combined.routes} == {
        ("shop", "/tickets/<id>"): 400, ("search", "/tickets/<id>"): 250, (DEFAULT_SERVICE, "/"): 1}
    assert [(s.service, s.count, s.errors) for s in combined.per_service()] == [
        ("shop", 400, 10), ("search", 250, 0), (DEFAULT_SERVICE, 1, 0)]

    for name, samples in (("shop", shop), ("search", search)):
        one = rollups.figures(window, service=name)
        assert one.count == len(samples) and one.service == name
        assert [r.service for r in one.routes] == [name]
        p95 = one.histogram.quantile(0.95)
        assert abs(p95 - exact(samples, 0.95)) <= RELATIVE_ACCURACY * exact(samples, 0.95)
        assert rollups.counts(window, service=name).count == len(samples)
        (per_service,) = one.per_service()
        assert per_service.histogram == one.histogram  # merged the same way: p95 per service is exact to the store

    assert rollups.figures(window, service="nobody").count == 0  # unknown: simply empty
    assert rollups.counts(window, service="nobody").count == 0
    assert sorted(rollups.services()) == sorted(["shop", "search", DEFAULT_SERVICE])
    assert rollups.routes_by_service() == {"shop": {"/tickets/<id>"}, "search": {"/tickets/<id>"}, DEFAULT_SERVICE: {"/"}}
    totals = {(t.service, t.route): t.aggregate.count for t in rollups.totals()}
    assert totals == {("shop", "/tickets/<id>"): 400, ("search", "/tickets/<id>"): 250, (DEFAULT_SERVICE, "/"): 1}
    assert [t.service for t in rollups.totals("search")] == ["search"]
    first = clock.now() - 5 * MINUTE
    assert sum(rollups.counts_per_bucket(first, MINUTE, 5, service="shop")) == 400
    assert sum(rollups.counts_per_bucket(first, MINUTE, 5)) == 651


def test_a_whole_histogram_merges_at_once_for_one_service_method_route_and_status(
    store: Store, clock: ManualClock
) -> None:
    """What ingest does with an OTLP histogram data point (a RequestContribution)."""
    recorder, rollups = RequestRecorder(clock), RequestRollups(store, clock)
    durations = [0.001 * (i + 1) for i in range(200)]
    histogram = LatencyHistogram()
    for seconds in durations:
        histogram.record(seconds)
    at = clock.now() - 90  # the data point's interval ended a minute and a half ago
    recorder.record_histogram("checkout", "POST", "/pay", 503, histogram, at)
    recorder.record_histogram("checkout", "POST", "/pay", 201, LatencyHistogram(), at)  # empty: nothing
    recorder.record("POST", "/pay", 201, 0.5, service="checkout")
    (minute_key, now_key) = sorted(recorder.drain(), key=lambda k: k.minute)
    assert minute_key == RollupKey(at - at % 60, "POST", "/pay", False, "checkout")
    assert now_key.minute == clock.now() - clock.now() % 60
    recorder.record_histogram("checkout", "POST", "/pay", 503, histogram, at)
    histogram.record(99.0)  # the recorder copied it: a later change does not leak in
    flush_recorder(recorder, rollups)
    figures = rollups.figures(last(clock, 300), service="checkout")
    assert figures.count == 200 and figures.status[5] == 200 and figures.errors == 200
    assert figures.histogram.max == pytest.approx(0.2)
    assert abs(figures.histogram.quantile(0.95) - exact(durations, 0.95)) <= RELATIVE_ACCURACY * 0.19
    with pytest.raises(TypeError):
        recorder.record_histogram("checkout", "POST", "/pay", 200, [0.1], at)  # type: ignore[arg-type]


def test_long_service_names_are_cut_and_restore_keeps_the_service(store: Store, clock: ManualClock) -> None:
    recorder = RequestRecorder(clock)
    recorder.record("GET", "/", 200, 0.01, service="s" * 300)
    (key,) = recorder.drain()
    assert key.service == "s" * 100
    recorder.record("GET", "/", 200, 0.01, service="shop")
    taken = recorder.drain()
    recorder.restore(taken)
    recorder.record("GET", "/", 200, 0.01, service="shop")
    (aggregate,) = recorder.drain().values()
    assert aggregate.count == 2


def boom(message: str) -> ValueError:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_error_groups_per_service(store: Store, clock: ManualClock) -> None:
    tracker = ErrorTracker(store, clock)
    shop = tracker.capture(boom("a"), "POST /checkout", service="shop")
    tracker.capture(boom("b"), "POST /checkout", service="shop")
    other = tracker.capture(boom("c"), "POST /checkout", service="search")
    default = tracker.capture(boom("d"), "POST /checkout")
    assert len({shop.key, other.key, default.key}) == 3  # the same code, three services: three groups
    assert tracker.record_error(service="search", fingerprint="0123456789abcdef", exception_type="TypeError",
                                message="bad [email]", stack_trace="at handler (app.js:1)", route="GET /q",
                                module="app.js", at=clock.now() - 5)
    tracker.record_error(service="search", fingerprint="0123456789abcdef", exception_type="TypeError",
                         message="bad [email]")
    assert tracker.flush() == 6
    clock.advance(MINUTE)

    window = last(clock, 300)
    combined = error_figures(store, window, None)
    assert (combined.count, combined.total) == (6, 6)
    assert combined.per_service == {"shop": 2, "search": 3, DEFAULT_SERVICE: 1}
    assert combined.totals == {"shop": 2, "search": 3, DEFAULT_SERVICE: 1}
    search = error_figures(store, window, None, service="search")
    assert (search.count, search.total) == (3, 3)
    assert {g.fingerprint: g.count_in_window for g in search.top_groups} == {"0123456789abcdef": 2, other.key: 1}
    ingested = next(g for g in search.top_groups if g.fingerprint == "0123456789abcdef")
    assert (ingested.service, ingested.where, ingested.route) == ("search", "app.js", "GET /q")
    assert ingested.to_json()["service"] == "search"
    assert error_figures(store, window, None, service="nobody").count == 0
    assert {g.service for g in list_error_groups(store, service="shop")} == {"shop"}
    assert len(list_error_groups(store)) == 4
    assert sorted(error_services(store)) == sorted(["shop", "search", DEFAULT_SERVICE])


def test_record_error_respects_the_pending_bound(store: Store, clock: ManualClock) -> None:
    tracker = ErrorTracker(store, clock, max_pending_groups=1)
    assert tracker.record_error(service="a", fingerprint="1" * 16, exception_type="E", message="")
    assert not tracker.record_error(service="a", fingerprint="2" * 16, exception_type="E", message="")
    assert tracker.dropped == 1
