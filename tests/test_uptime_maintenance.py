"""Maintenance windows: one-off, weekly and cron in a time zone (across daylight-saving changes),
scoped to services, stored, listed and deleted; every bad field of a spec is named."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitoring.clock import ManualClock
from monitoring.store.database import Store
from monitoring.uptime.maintenance import InvalidMaintenanceWindow, MaintenanceCalendar, parse_window_spec


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def calendar(store_url: str, clock: ManualClock) -> Iterator[MaintenanceCalendar]:
    store = Store(store_url, clock)
    store.migrate()
    yield MaintenanceCalendar(store, clock)
    store.dispose()


def spans(calendar: MaintenanceCalendar, start: float, end: float, service: str | None = None) -> list[tuple[str, str]]:
    return [(iso(o.start), iso(o.end)) for o in calendar.windows_overlapping(start, end, service)]


def test_weekly_window_follows_the_local_clock_across_daylight_saving(calendar: MaintenanceCalendar) -> None:
    calendar.create(parse_window_spec({"type": "weekly", "days": ["sun"], "start_time": "04:00", "duration": "2h",
                                       "timezone": "Europe/Madrid"}))
    # Madrid moves from UTC+1 to UTC+2 on 2026-03-29 and back on 2026-10-25.
    assert spans(calendar, utc(2026, 3, 20), utc(2026, 4, 6)) == [
        ("2026-03-22 03:00", "2026-03-22 05:00"),
        ("2026-03-29 02:00", "2026-03-29 04:00"),
        ("2026-04-05 02:00", "2026-04-05 04:00"),
    ]
    assert spans(calendar, utc(2026, 10, 20), utc(2026, 11, 2)) == [
        ("2026-10-25 03:00", "2026-10-25 05:00"),
        ("2026-11-01 03:00", "2026-11-01 05:00"),
    ]


def test_a_wall_time_that_happens_twice_starts_one_occurrence(calendar: MaintenanceCalendar) -> None:
    # 02:30 happens twice in Madrid on 2026-10-25 (03:00 CEST goes back to 02:00 CET): one window, at the first.
    calendar.create(parse_window_spec({"type": "weekly", "days": ["sun"], "start_time": "02:30", "duration": "1h",
                                       "timezone": "Europe/Madrid"}))
    assert spans(calendar, utc(2026, 10, 24), utc(2026, 10, 27)) == [("2026-10-25 00:30", "2026-10-25 01:30")]
    # And 02:30 on 2026-03-29 does not exist: the window starts at the same instant as 03:30 CEST.
    assert spans(calendar, utc(2026, 3, 28), utc(2026, 3, 30)) == [("2026-03-29 01:30", "2026-03-29 02:30")]


def test_cron_window_in_a_time_zone_with_bounds(calendar: MaintenanceCalendar) -> None:
    calendar.create(parse_window_spec({"type": "cron", "cron": "0 3 1 * *", "duration": "90m",
                                       "timezone": "America/New_York", "until": "2026-06-01T00:00:00Z"}))
    assert spans(calendar, utc(2026, 1, 1), utc(2026, 12, 31)) == [
        ("2026-01-01 08:00", "2026-01-01 09:30"),
        ("2026-02-01 08:00", "2026-02-01 09:30"),
        ("2026-03-01 08:00", "2026-03-01 09:30"),
        ("2026-04-01 07:00", "2026-04-01 08:30"),  # EDT from 2026-03-08
        ("2026-05-01 07:00", "2026-05-01 08:30"),
    ]
    # An occurrence that began before the range but still runs in it is included.
    assert spans(calendar, utc(2026, 2, 1, 9), utc(2026, 2, 1, 10)) == [("2026-02-01 08:00", "2026-02-01 09:30")]
    assert spans(calendar, utc(2026, 2, 1, 9, 30), utc(2026, 2, 1, 10)) == []


def test_scoped_windows_cover_only_their_services(calendar: MaintenanceCalendar) -> None:
    stripe = calendar.create(parse_window_spec({"type": "one_off", "start": "2026-01-01T02:00:00Z",
                                                "end": "2026-01-01T03:00:00Z", "services": ["stripe"]}))
    inside = utc(2026, 1, 1, 2, 30)
    assert calendar.is_in_maintenance(inside, service="stripe")
    assert not calendar.is_in_maintenance(inside, service="brevo")
    assert not calendar.is_in_maintenance(inside)  # stripe's maintenance is not the whole service's
    assert not calendar.is_in_maintenance(utc(2026, 1, 1, 3), service="stripe")  # the end is not inside
    assert calendar.is_in_maintenance(utc(2026, 1, 1, 2), service="stripe")  # the start is
    assert [o.window_id for o in calendar.windows_overlapping(utc(2026, 1, 1), utc(2026, 1, 2))] == [stripe.id]
    assert calendar.windows_overlapping(utc(2026, 1, 1), utc(2026, 1, 2), service="brevo") == []

    whole = calendar.create(parse_window_spec({"type": "one_off", "start": "2026-01-01T02:15:00Z",
                                               "end": "2026-01-01T02:45:00Z"}))
    assert calendar.is_in_maintenance(inside) and calendar.is_in_maintenance(inside, service="brevo")
    assert [o.window_id for o in calendar.windows_overlapping(utc(2026, 1, 1), utc(2026, 1, 2), "brevo")] == [whole.id]
    assert [o.window_id for o in calendar.active(inside)] == [stripe.id, whole.id]


def test_windows_are_stored_listed_and_deleted(calendar: MaintenanceCalendar, clock: ManualClock) -> None:
    past = calendar.create(parse_window_spec({"type": "one_off", "start": "2025-12-01T00:00:00Z",
                                              "end": "2025-12-01T01:00:00Z"}))
    weekly = calendar.create(
        parse_window_spec({"type": "weekly", "days": ["sat", "sun"], "start_time": "23:30", "duration": 3600,
                           "timezone": "UTC", "services": ["search", "brevo", "search"],
                           "reason": "reindex; questions to ops@example.com"}),
        created_by="admin:3f2a9c1e",
    )
    again = MaintenanceCalendar(calendar.store, clock)  # another process reading the same store
    assert [w.id for w in again.list_windows()] == [weekly.id]
    assert [w.id for w in again.list_windows(include_past=True)] == [past.id, weekly.id]
    shown = again.get(weekly.id)
    assert shown is not None and shown.to_json() == {
        "id": weekly.id,
        "type": "weekly",
        "reason": "reindex; questions to [email]",
        "services": ["brevo", "search"],
        "days": ["sat", "sun"],
        "startTime": "23:30",
        "duration": 3600.0,
        "timezone": "UTC",
        "createdBy": "admin:3f2a9c1e",
        "createdAt": "2026-01-01T00:00:00.000Z",
    }
    assert shown.cron == "30 23 * * sat,sun"
    assert again.delete(weekly.id).id == weekly.id
    assert again.delete(weekly.id) is None
    assert again.get(weekly.id) is None
    assert again.windows_overlapping(utc(2026, 1, 1), utc(2026, 2, 1)) == []


def test_a_window_change_and_its_audit_entry_commit_together(calendar: MaintenanceCalendar) -> None:
    spec = parse_window_spec({"type": "one_off", "start": "2026-01-01T02:00:00Z", "end": "2026-01-01T03:00:00Z"})
    written: list[int] = []

    def failing_audit(conn: object, window: object) -> None:
        raise RuntimeError("audit log unavailable")

    with pytest.raises(RuntimeError):
        calendar.create(spec, audit=failing_audit)
    assert calendar.list_windows(include_past=True) == []  # no window without its audit entry

    window = calendar.create(spec, audit=lambda conn, w: written.append(w.id))
    with pytest.raises(RuntimeError):
        calendar.delete(window.id, audit=failing_audit)
    assert calendar.get(window.id) is not None  # the delete rolled back with its audit entry
    assert calendar.delete(window.id, audit=lambda conn, w: written.append(w.id)).id == window.id
    assert written == [window.id, window.id]


@pytest.mark.parametrize(
    "body, problems",
    [
        ({}, {"type": "must be one of: one_off, weekly, cron"}),
        ({"type": "monthly"}, {"type": "must be one of: one_off, weekly, cron"}),
        ({"type": "one_off"}, {"start": "is required", "end": "is required"}),
        ({"type": "one_off", "start": "yesterday", "end": 5}, {"start": "must be an RFC 3339 timestamp"}),
        ({"type": "one_off", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
         {"end": "must be after start"}),
        ({"type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"},
         {"end": "at most 366 days"}),
        ({"type": "one_off", "start": True, "end": [1]},
         {"start": "must be an RFC 3339 timestamp", "end": "must be an RFC 3339 timestamp"}),
        ({"type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "service": ["x"]},
         {"service": "is not a field of a one_off window"}),
        ({"type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "services": "stripe"},
         {"services": "must be a list of up to 50 service names"}),
        ({"type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "services": ["Stripe!"]},
         {"services": "must be a list"}),
        ({"type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z", "reason": "x" * 201},
         {"reason": "at most 200 characters"}),
        ({"type": "weekly", "days": ["sunday"], "start_time": "25:00", "duration": "2h"},
         {"days": "must be a list of week days", "start_time": "must be a local time HH:MM"}),
        ({"type": "weekly", "days": [], "start_time": "02:00", "duration": "2h"}, {"days": "must be a list"}),
        ({"type": "weekly", "days": ["sun"], "start_time": "02:00"}, {"duration": "from 1m to 7d"}),
        ({"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "30s"}, {"duration": "from 1m to 7d"}),
        ({"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "8d"}, {"duration": "from 1m to 7d"}),
        ({"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "2h", "timezone": "Mars/Olympus"},
         {"timezone": "must be an IANA time zone"}),
        ({"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "2h", "timezone": "../../etc/passwd"},
         {"timezone": "must be an IANA time zone"}),
        ({"type": "cron", "cron": "every sunday", "duration": "1h"}, {"cron": "must be a five-field cron expression"}),
        ({"type": "cron", "cron": "0 3 * * *", "duration": "1h", "days": ["sun"]},
         {"days": "is not a field of a cron window"}),
        ({"type": "cron", "cron": "*/10 * * * *", "duration": "5m"}, {"cron": "at most once an hour"}),
        ({"type": "cron", "cron": "0 0 31 2 *", "duration": "1h"}, {"cron": "never happens"}),
        ({"type": "cron", "cron": "0 3 * * *", "duration": "1h", "from": "2026-02-01T00:00:00Z",
          "until": "2026-01-01T00:00:00Z"}, {"until": "must be after from"}),
    ],
)
def test_a_bad_spec_names_every_bad_field(body: dict[str, Any], problems: dict[str, str]) -> None:
    with pytest.raises(InvalidMaintenanceWindow) as raised:
        parse_window_spec(body)
    found = {p["field"]: p["message"] for p in raised.value.problems}
    assert set(found) == set(problems)
    for field, message in problems.items():
        assert message in found[field], (field, found[field])
    assert isinstance(raised.value, ValueError) and str(raised.value)


def test_durations_in_seconds_or_with_a_unit() -> None:
    base = {"type": "cron", "cron": "0 3 * * *", "timezone": "UTC"}
    assert parse_window_spec({**base, "duration": 5400}).duration_seconds == 5400
    assert parse_window_spec({**base, "duration": "90m"}).duration_seconds == 5400
    assert parse_window_spec({**base, "duration": "1.5h"}).duration_seconds == 5400
    assert parse_window_spec({**base, "duration": "1d"}).duration_seconds == 86400
    assert parse_window_spec({**base, "duration": "7d"}).duration_seconds == 7 * 86400
