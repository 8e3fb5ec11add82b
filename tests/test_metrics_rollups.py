"""Rollups in the store (SQLite and PostgreSQL): percentiles against exact values through the
real flush path, windows, merging across workers, downsampling and retention on a driven clock."""
from __future__ import annotations

import math
import random
import threading
import zlib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.exc import DBAPIError

from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.histogram import RELATIVE_ACCURACY, LatencyHistogram, nearest_rank
from monitoring.metrics.recorder import RequestRecorder
from monitoring.metrics.rollups import (
    HOUR,
    MINUTE,
    RequestRollups,
    StoredHistogramSum,
    decode_histogram,
    encode_histogram,
    flush_recorder,
)
from monitoring.metrics.windows import DAY, describe_valid_windows, format_window, parse_window
from monitoring.store.database import Store

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the ManualClock's start


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.dispose()


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[nearest_rank(q, len(ordered)) - 1]


def window(clock: ManualClock, seconds: float, label: str = "") -> TimeWindow:
    return TimeWindow(clock.now() - seconds, clock.now(), label or format_window(seconds))


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "lognormal 40ms": lambda rng: rng.lognormvariate(math.log(0.040), 0.6),
    "bimodal cache hit/miss": lambda rng: rng.gauss(0.003, 0.0004) if rng.random() < 0.85 else rng.gauss(0.35, 0.05),
    "exponential 120ms": lambda rng: rng.expovariate(1 / 0.120),
    "pareto heavy tail": lambda rng: 0.005 * rng.paretovariate(1.2),
    "uniform 1-2000ms": lambda rng: rng.uniform(0.001, 2.0),
}


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_percentiles_over_the_store_are_within_one_percent_of_exact(
    store: Store, clock: ManualClock, name: str
) -> None:
    rng = random.Random(name)
    draw = DISTRIBUTIONS[name]
    rollups = RequestRollups(store, clock)
    workers = [RequestRecorder(clock) for _ in range(3)]  # three gunicorn workers, one store
    samples: list[float] = []
    for second in range(0, 600, 5):  # ten minutes, a flush every five seconds
        clock.set(START + second)
        for i in range(40):
            value = draw(rng)
            samples.append(max(value, 0.0))
            workers[i % 3].record("GET", "/tickets/<id>", 200, value)
        for worker in workers:
            flush_recorder(worker, rollups)
    clock.set(START + 600)
    figures = rollups.figures(window(clock, 600))
    assert figures.count == len(samples) == 4800
    assert figures.routes[0].count == 4800 and figures.status[2] == 4800
    for q in (0.5, 0.95, 0.99):
        estimate, truth = figures.histogram.quantile(q), exact(samples, q)
        assert abs(estimate - truth) <= RELATIVE_ACCURACY * truth, (q, estimate, truth)
        route_estimate = figures.routes[0].histogram.quantile(q)
        assert route_estimate == estimate
    assert figures.histogram.sum == pytest.approx(sum(samples))


def test_figures_count_status_classes_errors_and_routes(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    for _ in range(90):
        recorder.record("GET", "/tickets/<id>", 200, 0.02)
    for _ in range(6):
        recorder.record("POST", "/checkout", 502, 0.9)
    for _ in range(4):
        recorder.record("POST", "/checkout", 201, 0.3)
    for _ in range(25):
        recorder.record("GET", "/api/health/live", 200, 0.001, internal=True)
    flush_recorder(recorder, rollups)
    clock.advance(60)

    figures = rollups.figures(window(clock, 300))
    assert (figures.count, figures.errors, figures.internal_count) == (100, 6, 25)
    assert figures.status == [0, 0, 94, 0, 0, 6]
    assert [(r.method, r.route, r.count, r.errors) for r in figures.routes] == [
        ("GET", "/tickets/<id>", 90, 0),
        ("POST", "/checkout", 10, 6),
    ]
    counts = rollups.counts(window(clock, 300))  # the same, summed in SQL without the histograms
    assert (counts.count, counts.errors, counts.status, counts.covered_from) == (
        100, 6, figures.status, figures.covered_from
    )
    assert rollups.counts(window(clock, 300), include_internal=True).count == 125
    with_internal = rollups.figures(window(clock, 300), include_internal=True)
    assert with_internal.count == 125 and with_internal.internal_count == 25
    assert ("GET", "/api/health/live", True) in {(r.method, r.route, r.internal) for r in with_internal.routes}


def test_windows_select_the_minutes_they_cover(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    # one request per minute for two hours, at hh:mm:30
    for minute in range(120):
        clock.set(START + minute * MINUTE + 30)
        recorder.record("GET", "/a", 200, 0.01)
    flush_recorder(recorder, rollups)
    clock.set(START + 120 * MINUTE + 30)  # 02:00:30: the current minute has no request yet

    one = rollups.figures(window(clock, 60))
    assert one.count == 1  # minute 01:59 (from 01:59:30, widened to 01:59:00)
    assert one.covered_from == START + 119 * MINUTE and one.covered_seconds == 90
    assert rollups.figures(window(clock, 5 * 60)).count == 5
    assert rollups.figures(window(clock, HOUR)).count == 60
    assert rollups.figures(window(clock, 24 * HOUR)).count == 120
    # per second / per minute over the covered interval
    five = rollups.figures(window(clock, 300))
    assert five.covered_seconds == 330


def test_two_workers_flushing_the_same_minute_merge_into_one_row(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock)
    first, second = RequestRecorder(clock), RequestRecorder(clock)
    first.record("GET", "/a", 200, 0.010)
    second.record("GET", "/a", 200, 0.500)
    flush_recorder(first, rollups)
    flush_recorder(second, rollups)
    first.record("GET", "/a", 200, 0.020)
    flush_recorder(first, rollups)
    assert rollups.row_counts() == {MINUTE: 1, HOUR: 1}
    clock.advance(30)
    figures = rollups.figures(window(clock, 60))
    assert figures.count == 3
    assert (figures.histogram.min, figures.histogram.max) == (0.010, 0.500)
    totals = rollups.totals()
    assert [(t.route, t.aggregate.count) for t in totals] == [("/a", 3)]


def test_concurrent_flushes_from_many_processes_lose_no_sample(store_url: str, clock: ManualClock) -> None:
    """Read-merge-write under the writer lock: without it, concurrent flushes overwrite each other."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        store = Store(store_url)  # an engine of its own, as a separate process has
        rollups = RequestRollups(store, clock)
        recorder = RequestRecorder(clock)
        try:
            barrier.wait()
            for _ in range(15):
                recorder.record("GET", "/hot", 200, 0.01)
                flush_recorder(recorder, rollups)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.dispose()

    Store(store_url).migrate()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = Store(store_url)
    clock.advance(30)
    assert RequestRollups(store, clock).figures(window(clock, 60)).count == 60
    assert RequestRollups(store, clock).totals()[0].aggregate.count == 60
    store.dispose()


def test_a_failed_flush_keeps_the_samples_for_the_next_one(tmp_path, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    recorder.record("GET", "/a", 200, 0.01)
    broken = RequestRollups(Store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"), clock)
    with pytest.raises(DBAPIError):  # unable to open database file
        flush_recorder(recorder, broken)  # no tables there: the flush fails
    recorder.record("GET", "/a", 200, 0.02)
    assert flush_recorder(recorder, rollups) == 1  # one minute row
    clock.advance(30)
    assert rollups.figures(window(clock, 60)).count == 2
    store.dispose()


def test_hour_rows_hold_what_the_minutes_hold_and_minutes_go_after_48_hours(
    store: Store, clock: ManualClock
) -> None:
    rng = random.Random(7)
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    samples: list[float] = []
    keys: set[tuple[int, str]] = set()  # (minute, route) as recorded
    # three hours of traffic, two routes, a sample every 20 s, one in seven a 503
    for step in range(3 * 180):
        clock.set(START + step * 20)
        value = rng.lognormvariate(math.log(0.05), 0.7)
        route, status = ("/a" if step % 2 else "/b"), (200 if step % 7 else 503)
        samples.append(value)
        keys.add((step * 20 // 60, route))
        recorder.record("GET", route, status, value)
        if step % 15 == 0:
            flush_recorder(recorder, rollups)
    flush_recorder(recorder, rollups)
    assert rollups.row_counts() == {MINUTE: len(keys), HOUR: 6}  # 3 hours x 2 routes, from the first flush on
    recent_minutes = {key for key in keys if key[0] >= 120}

    # A window of whole hours reads the hour rows; one ending mid-hour reads that hour's minutes:
    # both give the same figures as the minutes would.
    clock.set(START + 3 * HOUR)
    from_hours = rollups.figures(window(clock, 3 * HOUR))
    from_minutes = rollups.figures(TimeWindow(START + 1, START + 3 * HOUR - 1, "odd"))
    assert from_hours.histogram.buckets() == from_minutes.histogram.buckets()
    assert from_hours.status == from_minutes.status and from_hours.count == len(samples)

    clock.set(START + 48 * HOUR + 2 * HOUR + 10)  # hours 0 and 1 are now past the 48 h horizon; hour 2 is not
    assert rollups.downsample() == len(keys) - len(recent_minutes)
    assert rollups.row_counts() == {HOUR: 6, MINUTE: len(recent_minutes)}
    assert rollups.downsample() == 0  # nothing left to do

    after = rollups.figures(TimeWindow(START, START + 3 * HOUR, "3h"))
    odd = rollups.figures(TimeWindow(START + 1, START + 3 * HOUR - 1, "odd"))  # its first hour is hour rows now
    for figures in (after, odd):
        assert figures.count == len(samples)
        assert figures.status == from_hours.status and figures.errors > 0
        # exact: merging is adding bucket counts (only the float sum depends on the order of adding)
        assert figures.histogram.buckets() == from_hours.histogram.buckets()
        assert figures.histogram.sum == pytest.approx(from_hours.histogram.sum, rel=1e-12)
    assert odd.covered_from == START and odd.covered_to == START + 3 * HOUR - 1
    for q in (0.5, 0.95, 0.99):
        assert abs(after.histogram.quantile(q) - exact(samples, q)) <= RELATIVE_ACCURACY * exact(samples, q)


def test_a_window_reaching_into_hour_rows_covers_whole_hours(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    clock.set(START + 30 * MINUTE)
    recorder.record("GET", "/a", 200, 0.01)
    flush_recorder(recorder, rollups)
    clock.set(START + 50 * HOUR)
    rollups.downsample()
    assert rollups.row_counts() == {HOUR: 1}
    clock.set(START + 50 * HOUR + 45 * MINUTE)
    figures = rollups.figures(TimeWindow(START + 15 * MINUTE, clock.now(), "test"))
    assert figures.count == 1
    assert figures.covered_from == START  # widened to the hour row's start
    assert rollups.counts(TimeWindow(START + 15 * MINUTE, clock.now(), "test")).covered_from == START


def test_retention_purges_rollups_older_than_metrics_retention_days(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock, retention_seconds=30 * DAY)
    recorder = RequestRecorder(clock)
    for day in range(0, 35, 5):
        clock.set(START + day * DAY)
        recorder.record("GET", "/a", 200, 0.01)
        flush_recorder(recorder, rollups)
    clock.set(START + 35 * DAY)
    # seven minute rows (all older than 48 h), and the hour row of day 0 (day 5 is exactly 30 days old)
    assert rollups.downsample() == 7 + 1
    assert rollups.row_counts() == {HOUR: 6}
    assert rollups.figures(window(clock, 31 * DAY)).count == 6
    assert rollups.totals()[0].aggregate.count == 7  # running totals are never purged


def test_downsampling_a_long_backlog_goes_in_short_transactions(store: Store, clock: ManualClock) -> None:
    rollups = RequestRollups(store, clock, retention_seconds=30 * DAY)
    recorder = RequestRecorder(clock)
    for minute in range(0, 5 * 24 * 60, 30):  # five days, a request every half hour
        clock.set(START + minute * MINUTE)
        recorder.record("GET", "/a", 200, 0.01)
        flush_recorder(recorder, rollups)
    clock.set(START + 40 * DAY)  # the job did not run for weeks
    assert rollups.downsample(batch_seconds=HOUR) == 240 + 120  # every minute row and every hour row
    assert rollups.row_counts() == {}


def test_the_service_registers_downsampling_and_retention(app, monitoring, clock: ManualClock) -> None:  # type: ignore[no-untyped-def]
    job = monitoring.scheduler.jobs["metrics_downsample"]
    assert job.scope == "global"
    assert monitoring.scheduler.jobs["metrics_flush"].scope == "process"
    assert monitoring.scheduler.jobs["metrics_flush"].interval == monitoring.settings.metrics_flush_interval
    client = app.test_client()
    client.get("/api/health/live")
    monitoring.scheduler.run_process("metrics_flush")
    clock.advance(3 * DAY)
    assert job.func() == 1  # the minute row
    clock.advance(28 * DAY)
    assert job.func() == 1  # the hour row, past METRICS_RETENTION_DAYS (30)


# --- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [("1m", 60), ("5m", 300), ("90m", 5400), ("1h", 3600), ("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400)],
)
def test_window_forms(text: str, seconds: int) -> None:
    parsed = parse_window(text, now=1000.0 * DAY)
    assert (parsed.end - parsed.start, parsed.end, parsed.label) == (seconds, 1000.0 * DAY, text)


@pytest.mark.parametrize("text", ["", "5", "m", "0m", "-5m", "5 m", "1.5h", "5s", "5M", "1w", "31d", "1000000m", "5mm"])
def test_bad_windows_say_what_is_valid(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_window(text, now=1000.0 * DAY, longest_seconds=30 * DAY)
    message = str(raised.value)
    assert message == describe_valid_windows(30 * DAY)
    assert "1m, 5m, 15m, 1h, 6h, 24h, 7d, 30d" in message and "from 1m to 30d" in message


def test_window_labels() -> None:
    assert [format_window(s) for s in (60, 300, 5400, 3600, 86400, 30 * 86400)] == [
        "1m", "5m", "90m", "1h", "1d", "30d"
    ]


# --- the stored histogram ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [],  # empty
        [0.0, -1.0, float("nan"), 5e-7],  # only the zero bucket
        [0.004, 0.005, 0.9, 3.0, 7200.0],  # sparse, with a clamped value above an hour
        [0.050] * 70_000 + [0.051] * 300,  # counts that need three bytes
    ],
)
def test_stored_histograms_decode_to_what_was_encoded(values: list[float]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    decoded = decode_histogram(encode_histogram(histogram))
    assert decoded == histogram
    assert decoded.quantiles((0.5, 0.99)) == histogram.quantiles((0.5, 0.99))


def test_adding_stored_histograms_equals_merging_them() -> None:
    rng = random.Random(5)
    parts = []
    for median in (0.002, 0.04, 0.9):
        histogram = LatencyHistogram()
        for _ in range(3000):
            histogram.record(rng.lognormvariate(math.log(median), 0.8))
        parts.append(histogram)
    parts.append(LatencyHistogram())  # an empty one changes nothing
    added = StoredHistogramSum()
    for histogram in parts:
        added.add(encode_histogram(histogram))
    merged = LatencyHistogram.merged(parts)
    result = added.histogram()
    assert result.buckets() == merged.buckets() and result.count == merged.count == 9000
    assert (result.min, result.max, result.zero_count) == (merged.min, merged.max, merged.zero_count)
    assert result.sum == pytest.approx(merged.sum, rel=1e-12)


def test_the_stored_form_is_smaller_than_the_histograms_own_encoding() -> None:
    rng = random.Random(11)
    hour = LatencyHistogram()
    for _ in range(60_000):
        hour.record(rng.lognormvariate(math.log(0.08), 0.7))
    assert len(encode_histogram(hour)) < 0.8 * len(zlib.compress(hour.to_bytes(), 9))


@pytest.mark.parametrize("blob", [b"", b"not deflate at all", zlib.compress(b"x" * 80)[2:-4]])
def test_a_damaged_stored_histogram_is_a_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_histogram(blob)
