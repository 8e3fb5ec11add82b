"""The dashboard's per-bucket series on the real store (SQLite and PostgreSQL): requests from the
rollups through the real recorder and flush, payments from real business events."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from monitoring.business.events import BusinessRecorder, UserIdHasher
from monitoring.clock import ManualClock, isoformat
from monitoring.dashboard.series import (
    LAST_DAY,
    LAST_HOUR,
    BucketMemo,
    SeriesSpec,
    payment_series,
    request_series,
    series_json,
)
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.histogram import LatencyHistogram
from monitoring.metrics.recorder import RequestRecorder
from monitoring.metrics.rollups import RequestRollups, flush_recorder
from monitoring.store.database import Store

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.dispose()


def record(recorder: RequestRecorder, clock: ManualClock, at: float, durations: list[float], status: int = 200,
           route: str = "/tickets/<id>") -> None:
    clock.set(at)
    for seconds in durations:
        recorder.record("GET", route, status, seconds)


def test_spec_cuts_the_span_into_buckets_ending_with_the_current_one() -> None:
    assert LAST_HOUR.buckets == 60 and LAST_DAY.buckets == 96
    starts = LAST_HOUR.starts(START + 3599.5)
    assert starts[-1] == START + 3540 and starts[0] == START and len(starts) == 60
    assert LAST_DAY.starts(START + 86400)[-1] == START + 86400
    with pytest.raises(ValueError):
        SeriesSpec("bad", 3600, 7)
    with pytest.raises(ValueError):
        SeriesSpec("bad", 3600, 0)


def test_request_buckets_hold_their_own_counts_and_merged_percentiles(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)
    worker_a, worker_b = RequestRecorder(clock), RequestRecorder(clock)
    # Minute 10: two workers, fast and slow; minute 11: 5xx only; minute 70 (outside the hour): ignored.
    record(worker_a, clock, START + 600 + 5, [0.010] * 90)
    record(worker_b, clock, START + 600 + 30, [0.500] * 10)
    record(worker_a, clock, START + 660 + 1, [0.050] * 4, status=503)
    record(worker_b, clock, START - 60, [9.0])  # before the hour shown
    for recorder in (worker_a, worker_b):
        flush_recorder(recorder, rollups)
    now = START + 3599.0
    points = request_series(rollups, LAST_HOUR, now)
    by_start = {p.start: p for p in points}
    assert len(points) == 60 and points[0].start == START and points[-1].start == START + 3540
    ten = by_start[START + 600]
    assert (ten.count, ten.errors, ten.seconds) == (100, 0, 60)
    merged = LatencyHistogram()
    for value in [0.010] * 90 + [0.500] * 10:
        merged.record(value)
    assert (ten.p50, ten.p95, ten.p99) == tuple(merged.quantiles((0.5, 0.95, 0.99)))
    assert ten.p95 == pytest.approx(0.500, rel=0.011)  # a mean of the workers' p95s would say ~0.255
    eleven = by_start[START + 660]
    assert (eleven.count, eleven.errors) == (4, 4)
    assert sum(p.count for p in points) == 104
    assert points[-1].seconds == pytest.approx(59.0)  # the current minute, partly elapsed
    assert all(p.p50 is None for p in points if p.count == 0)


def test_day_series_uses_quarter_hours_and_refuses_buckets_shorter_than_merged_hours(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)  # minutes are kept 48 h: a day of quarter hours is all minutes
    recorder = RequestRecorder(clock)
    record(recorder, clock, START + 900 * 3 + 10, [0.02] * 7)
    flush_recorder(recorder, rollups)
    points = request_series(rollups, LAST_DAY, START + 86399)
    assert [p.count for p in points if p.count] == [7] and points[3].count == 7
    # Where minutes older than the horizon may be merged into hours, a quarter-hour bucket would read the whole hour.
    short_horizon = RequestRollups(store, clock, minute_horizon=6 * 3600)
    with pytest.raises(ValueError, match="shorter than an hour"):
        request_series(short_horizon, LAST_DAY, START + 86399)
    hourly = request_series(short_horizon, SeriesSpec("24h", 86400, 3600), START + 86399)
    assert len(hourly) == 24 and hourly[0].count == 7


def test_payment_buckets_count_by_outcome_on_both_stores(store: Store) -> None:
    clock = ManualClock(START + 3599.0)
    recorder = BusinessRecorder(store, clock, UserIdHasher("test-hash-key"), 30 * 86400)

    def paid(at: float, outcome: str) -> dict[str, object]:
        stamp = datetime.fromtimestamp(at, tz=UTC).isoformat().replace("+00:00", "Z")
        return {"type": "payment", "outcome": outcome, "amount": 1000, "currency": "EUR", "timestamp": stamp}

    recorder.record_raw([
        paid(START + 60, "succeeded"),  # exactly at a bucket start: that bucket
        paid(START + 119.999, "failed"),  # just before the next one: still that bucket
        paid(START + 120, "succeeded"),
        paid(START + 3598, "succeeded"),  # the current, partial bucket
        paid(START - 0.5, "failed"),  # before the span
    ])
    points = payment_series(store, LAST_HOUR, clock.now())
    assert len(points) == 60
    assert (points[1].succeeded, points[1].failed) == (1, 1)
    assert (points[2].succeeded, points[2].failed) == (1, 0)
    assert (points[-1].succeeded, points[-1].failed) == (1, 0)
    assert sum(p.succeeded + p.failed for p in points) == 4


def test_series_json_gives_milliseconds_shares_and_payments(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    record(recorder, clock, START + 5, [0.004, 0.006], status=500)
    record(recorder, clock, START + 6, [0.002, 0.002])
    flush_recorder(recorder, rollups)
    now = START + 30
    spec = SeriesSpec("5m", 300, 60)
    body = series_json(spec, now, request_series(rollups, spec, now), payment_series(store, spec, now))
    assert body["window"] == "5m" and body["stepSeconds"] == 60 and body["to"] == isoformat(now)
    assert body["from"] == isoformat(START - 240)
    last = body["points"][-1]
    assert last["requests"] == 4 and last["errors"] == 2 and last["errorShare"] == 0.5 and last["seconds"] == 30
    assert last["p99"] == round(0.006 * 1000, 3) and last["payments"] == {"succeeded": 0, "failed": 0}
    assert body["points"][0]["errorShare"] is None and body["points"][0]["p50"] is None
    assert "payments" not in series_json(spec, now, request_series(rollups, spec, now), None)["points"][0]
    assert rollups.figures(TimeWindow(START, START + 60, "1m")).count == 4


def test_remembered_buckets_answer_what_the_store_holds_late_samples_included(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    memo = BucketMemo()

    def series(now: float, with_memo: bool = True) -> dict[float, tuple[int, float | None]]:
        return {p.start: (p.count, p.p99)
                for p in request_series(rollups, LAST_HOUR, now, memo if with_memo else None)}

    record(recorder, clock, START + 5, [0.01] * 3)  # minute 0
    record(recorder, clock, START + 545, [0.01])  # minute 9
    flush_recorder(recorder, rollups)
    first = series(START + 550)
    assert first[START][0] == 3 and first[START + 540][0] == 1
    remembered = memo.get(60, START, 3)
    assert remembered is not None and remembered.count == 3  # computed once, kept with its count
    # Samples reaching the store late (a flush retried after an outage): into minute 0, long complete,
    # into minute 9, and into the current minute. Every bucket answers what the store holds now.
    record(recorder, clock, START + 6, [0.5] * 2)
    record(recorder, clock, START + 546, [0.01] * 4)
    record(recorder, clock, START + 601, [0.01])
    flush_recorder(recorder, rollups)
    again = series(START + 610)
    assert again == series(START + 610, with_memo=False)  # the memo answers as the store does
    assert again[START][0] == 5 and again[START][1] == pytest.approx(0.5, rel=0.02)  # the late slow ones count
    assert again[START + 540][0] == 5 and again[START + 600][0] == 1
    # A bucket is reused only at the count it was computed from.
    assert memo.get(60, START + 540, 5) is not None and memo.get(60, START + 540, 4) is None


def test_the_last_complete_bucket_is_the_latest_and_says_which(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)
    recorder = RequestRecorder(clock)
    record(recorder, clock, START + 61, [0.01] * 16)  # minute 1: complete at START + 120
    record(recorder, clock, START + 125, [0.01])  # minute 2: still filling
    flush_recorder(recorder, rollups)
    now = START + 130
    body = series_json(LAST_HOUR, now, request_series(rollups, LAST_HOUR, now), None)
    assert [p["complete"] for p in body["points"][-3:]] == [True, True, False]
    assert body["points"][-1]["requests"] == 1 and body["points"][-1]["seconds"] == 10
    assert body["latest"]["from"] == isoformat(START + 60) and body["latest"]["to"] == isoformat(START + 120)
    assert body["latest"]["requests"] == 16
    empty = series_json(SeriesSpec("1m", 60, 60), now, request_series(rollups, SeriesSpec("1m", 60, 60), now), None)
    assert empty["latest"] is None  # a single, filling bucket: nothing complete to report yet


def test_the_memo_keeps_one_span_per_series(store: Store) -> None:
    clock = ManualClock(START)
    rollups = RequestRollups(store, clock)
    memo = BucketMemo()
    request_series(rollups, LAST_HOUR, START + 7200, memo)
    request_series(rollups, LAST_HOUR, START + 3 * 3600, memo)
    assert len(memo._points) <= LAST_HOUR.buckets
