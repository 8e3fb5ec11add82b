"""Maintenance windows: the one place they live. Uptime leaves their time out; alerting mutes inside them.

A window is one-off (``start`` to ``end``), weekly (``days`` at ``start_time`` for
``duration`` in a ``timezone``) or cron (a five-field expression, ``duration``,
``timezone``), and optionally scoped to ``services``. A weekly window is stored as the cron
expression it stands for, so both recurring kinds are expanded by the same code.

Recurring windows match the local wall clock of their time zone: APScheduler's CronTrigger
walks wall-clock times (in UTC, where no clock jumps), and each is then placed in the zone.
A wall time that happens twice (the autumn change) starts one occurrence, at the first; one
that never happens (the spring change) starts at the same instant an hour later. (The
trigger's own zone handling fires twice on the autumn change and then repeats itself.)

What other features call (the alerting API creates, lists and deletes; the engine mutes)::

    calendar = MaintenanceCalendar(store, clock)
    window = calendar.create(parse_window_spec(body), created_by="admin:3f2a9c1e")
    calendar.list_windows(); calendar.delete(window.id)
    calendar.is_in_maintenance(now, service="stripe")
    calendar.windows_overlapping(start, end, service="stripe")
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection, RowMapping

from monitoring.clock import Clock, isoformat, parse_timestamp
from monitoring.durations import DAY, HOUR, MINUTE, parse_duration
from monitoring.health.definitions import NAME_PATTERN
from monitoring.problems import InvalidInput
from monitoring.security.pii import sanitise_text
from monitoring.store.database import Store
from monitoring.store.uptime_tables import maintenance_windows
from monitoring.uptime.intervals import Span

if TYPE_CHECKING:  # APScheduler's cron parser loads with the first recurring window
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

ONE_OFF = "one_off"
WEEKLY = "weekly"
CRON = "cron"
KINDS = (ONE_OFF, WEEKLY, CRON)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

MIN_DURATION = MINUTE
MAX_DURATION = 7 * DAY
# A recurring window may start at most once an hour: this bounds the work of expanding a 90-day range.
MIN_RECURRENCE_SECONDS = HOUR
MAX_OCCURRENCES = 20_000
MAX_REASON_LENGTH = 200
MAX_SERVICES = 50

_FIELDS = {
    ONE_OFF: {"type", "start", "end", "services", "reason"},
    WEEKLY: {"type", "days", "start_time", "duration", "timezone", "from", "until", "services", "reason"},
    CRON: {"type", "cron", "duration", "timezone", "from", "until", "services", "reason"},
}
_START_TIME = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_RECURRENCE_CHECK_FROM = datetime(2001, 1, 1, tzinfo=UTC)


class InvalidMaintenanceWindow(InvalidInput):
    """A window spec with problems, one {"field", "message"} per bad field."""

    code = "invalid_window"
    refusal = "the maintenance window is not valid"


@dataclass(frozen=True)
class MaintenanceSpec:
    """A validated window, not stored yet."""

    kind: str
    reason: str = ""
    starts_at: float | None = None
    ends_at: float | None = None
    cron: str | None = None
    duration_seconds: float | None = None
    timezone: str | None = None
    services: tuple[str, ...] = ()
    schedule: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MaintenanceOccurrence:
    """One stretch of time a window covers."""

    window_id: int
    start: float
    end: float
    services: tuple[str, ...]  # empty: the whole service
    reason: str

    @property
    def span(self) -> Span:
        return Span(self.start, self.end)

    def covers(self, service: str | None) -> bool:
        """Whether it puts ``service`` (None: the whole service) in maintenance."""
        return not self.services or (service is not None and service in self.services)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window_id,
            "from": isoformat(self.start),
            "to": isoformat(self.end),
            "services": list(self.services) or None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class MaintenanceWindow:
    id: int
    kind: str
    reason: str
    starts_at: float | None
    ends_at: float | None
    cron: str | None
    duration_seconds: float | None
    timezone: str | None
    services: tuple[str, ...]
    schedule: dict[str, Any]
    created_by: str
    created_at: float

    def occurrences(self, start: float, end: float) -> list[MaintenanceOccurrence]:
        """The stretches of this window that overlap ``[start, end)``, in order."""
        spans: list[Span] = []
        if self.kind == ONE_OFF:
            assert self.starts_at is not None and self.ends_at is not None
            if self.starts_at < end and self.ends_at > start:
                spans.append(Span(self.starts_at, self.ends_at))
        else:
            spans = self._recurring(start, end)
        return [MaintenanceOccurrence(self.id, s.start, s.end, self.services, self.reason) for s in spans]

    def _recurring(self, start: float, end: float) -> list[Span]:
        assert self.cron is not None and self.duration_seconds is not None
        duration = self.duration_seconds
        # An occurrence that began up to one duration before ``start`` still overlaps it.
        search_from = start - duration
        if self.starts_at is not None:
            search_from = max(search_from, self.starts_at)
        search_to = end if self.ends_at is None else min(end, self.ends_at)
        zone = ZoneInfo(self.timezone or "UTC")
        spans: list[Span] = []
        previous = -math.inf
        for at in _local_firings(self.cron, zone, search_from):
            if at >= search_to:
                break
            if at <= previous or at < search_from:
                continue
            previous = at
            if at + duration > start:
                spans.append(Span(at, at + duration))
            if len(spans) >= MAX_OCCURRENCES:
                log.warning("maintenance window %s: stopped after %d occurrences", self.id, MAX_OCCURRENCES)
                break
        return spans

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "reason": self.reason,
            "services": list(self.services) or None,
            **self.schedule,
            "createdBy": self.created_by,
            "createdAt": isoformat(self.created_at),
        }


# Writes the audit entry of a window change, in the transaction that makes the change.
WindowAudit = Callable[[Connection, "MaintenanceWindow"], None]


class MaintenanceCalendar:
    """Maintenance windows in the store: create, list, delete, and what they cover when."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def create(
        self, spec: MaintenanceSpec, created_by: str = "", audit: WindowAudit | None = None
    ) -> MaintenanceWindow:
        """Store a window; ``audit(conn, window)`` runs in the same transaction (no unaudited window)."""
        values = {
            "kind": spec.kind,
            "reason": sanitise_text(spec.reason)[:MAX_REASON_LENGTH],
            "starts_at": spec.starts_at,
            "ends_at": spec.ends_at,
            "cron": spec.cron,
            "duration_seconds": spec.duration_seconds,
            "timezone": spec.timezone,
            "services": list(spec.services),
            "schedule": spec.schedule,
            "created_by": created_by[:64],
            "created_at": self.clock.now(),
        }
        with self.store.write() as conn:
            key = conn.execute(insert(maintenance_windows).values(**values)).inserted_primary_key
            assert key is not None  # SQLAlchemy's Optional: None only for an executemany
            new_id = key[0]
            window = _window({"id": new_id, **values})
            if audit is not None:
                audit(conn, window)
        return window

    def get(self, window_id: int) -> MaintenanceWindow | None:
        with self.store.read() as conn:
            row = conn.execute(select(maintenance_windows).where(maintenance_windows.c.id == window_id)).mappings().first()
        return _window(row) if row else None

    def list_windows(self, include_past: bool = False) -> list[MaintenanceWindow]:
        """Every window, oldest first; without ``include_past``, only those not over yet."""
        query = select(maintenance_windows).order_by(maintenance_windows.c.id)
        if not include_past:
            now = self.clock.now()
            query = query.where(or_(maintenance_windows.c.ends_at.is_(None), maintenance_windows.c.ends_at > now))
        with self.store.read() as conn:
            return [_window(row) for row in conn.execute(query).mappings()]

    def delete(self, window_id: int, audit: WindowAudit | None = None) -> MaintenanceWindow | None:
        """Remove a window (its time counts in the uptime figures again); the removed window, or None.

        Read, delete and ``audit(conn, window)`` share one transaction."""
        with self.store.write() as conn:
            row = conn.execute(select(maintenance_windows).where(maintenance_windows.c.id == window_id)).mappings().first()
            if row is None:
                return None
            conn.execute(delete(maintenance_windows).where(maintenance_windows.c.id == window_id))
            window = _window(row)
            if audit is not None:
                audit(conn, window)
            return window

    def windows_overlapping(self, start: float, end: float, service: str | None = None) -> list[MaintenanceOccurrence]:
        """Occurrences overlapping ``[start, end)``, by start time.

        With ``service``, only windows that cover it (unscoped windows, or those naming it);
        with None, every window, whatever its scope (each occurrence says its ``services``).
        """
        query = select(maintenance_windows).where(
            or_(maintenance_windows.c.starts_at.is_(None), maintenance_windows.c.starts_at < end),
            or_(maintenance_windows.c.ends_at.is_(None), maintenance_windows.c.ends_at > start - MAX_DURATION),
        )
        with self.store.read() as conn:
            windows = [_window(row) for row in conn.execute(query).mappings()]
        found = occurrences_of(windows, start, end)
        return found if service is None else [o for o in found if o.covers(service)]

    def is_in_maintenance(self, at: float, service: str | None = None) -> bool:
        """Whether ``at`` is inside a window covering ``service``.

        With None, only a window for the whole service counts: one scoped to some
        dependencies does not put everything in maintenance.
        """
        return any(o.covers(service) and o.start <= at < o.end for o in self.windows_overlapping(at, at + 1e-6))

    def active(self, at: float) -> list[MaintenanceOccurrence]:
        """Occurrences in progress at ``at``, whatever their scope."""
        return [o for o in self.windows_overlapping(at, at + 1e-6) if o.start <= at < o.end]


# --- parsing a window spec (the JSON an API receives) --------------------------------------------


def parse_window_spec(body: Mapping[str, Any]) -> MaintenanceSpec:
    """Validate a window given as JSON; InvalidMaintenanceWindow lists every bad field.

    ``{"type": "one_off", "start": "2026-11-14T02:00:00Z", "end": "2026-11-14T04:00:00Z"}``
    ``{"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "2h", "timezone": "Europe/Madrid"}``
    ``{"type": "cron", "cron": "0 3 1 * *", "duration": "90m", "timezone": "America/New_York"}``
    and on any of them ``services`` (list of names; default the whole service), ``reason``;
    on the recurring ones ``from`` / ``until`` (when the schedule applies).
    """
    problems: list[dict[str, str]] = []

    def problem(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    kind = body.get("type")
    if kind not in KINDS:
        raise InvalidMaintenanceWindow([{"field": "type", "message": f"must be one of: {', '.join(KINDS)}"}])
    for unknown in sorted(set(body) - _FIELDS[kind]):
        problem(str(unknown)[:40], f"is not a field of a {kind} window")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        problem("reason", f"must be text of at most {MAX_REASON_LENGTH} characters")
        reason = ""
    services = _services(body.get("services"), problem)
    spec_values: dict[str, Any] = {"kind": kind, "reason": reason.strip(), "services": services}
    if kind == ONE_OFF:
        start = _instant(body, "start", problem, required=True)
        end = _instant(body, "end", problem, required=True)
        if start is not None and end is not None:
            if end <= start:
                problem("end", "must be after start")
            elif end - start > 366 * DAY:
                problem("end", "a one-off window may last at most 366 days")
        spec_values.update(starts_at=start, ends_at=end,
                           schedule={"start": isoformat(start), "end": isoformat(end)})
    else:
        zone = _timezone(body.get("timezone", "UTC"), problem)
        duration = _duration(body.get("duration"), problem)
        valid_from = _instant(body, "from", problem)
        until = _instant(body, "until", problem)
        if valid_from is not None and until is not None and until <= valid_from:
            problem("until", "must be after from")
        if kind == WEEKLY:
            expression, shown = _weekly(body, problem)
        else:
            expression = _cron(body.get("cron"), problem)
            shown = {"cron": expression}
        if expression and zone and not problems:
            _check_recurrence(expression, "days" if kind == WEEKLY else "cron", problem)
        schedule = {**shown, "duration": duration, "timezone": zone,
                    "from": isoformat(valid_from), "until": isoformat(until)}
        spec_values.update(starts_at=valid_from, ends_at=until, cron=expression, duration_seconds=duration,
                           timezone=zone, schedule={k: v for k, v in schedule.items() if v is not None})
    if problems:
        raise InvalidMaintenanceWindow(problems)
    return MaintenanceSpec(**spec_values)


def _services(raw: Any, problem: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_SERVICES
        or not all(isinstance(s, str) and NAME_PATTERN.fullmatch(s) for s in raw)
    ):
        problem("services", f"must be a list of up to {MAX_SERVICES} service names (a-z, 0-9, '-', '_')")
        return ()
    return tuple(sorted(set(raw)))


def _instant(body: Mapping[str, Any], name: str, problem: Any, required: bool = False) -> float | None:
    raw = body.get(name)
    if raw is None:
        if required:
            problem(name, "is required: an RFC 3339 timestamp such as 2026-11-14T02:00:00Z")
        return None
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError
        value = parse_timestamp(raw) if isinstance(raw, str) else float(raw)
        if not math.isfinite(value) or not 0 <= value < 253402300800:  # up to year 9999
            raise ValueError
    except (ValueError, OverflowError):
        problem(name, "must be an RFC 3339 timestamp such as 2026-11-14T02:00:00Z")
        return None
    return value


def _duration(raw: Any, problem: Any) -> float | None:
    try:
        return parse_duration(raw, MIN_DURATION, MAX_DURATION)
    except ValueError:
        problem("duration", "must be seconds or a duration such as 90m, 2h or 1d, from 1m to 7d")
        return None


def _timezone(raw: Any, problem: Any) -> str | None:
    if isinstance(raw, str) and 0 < len(raw) <= 64:
        try:
            ZoneInfo(raw)
            return raw
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones: OSError
            pass
    problem("timezone", "must be an IANA time zone such as UTC, Europe/Madrid or America/New_York")
    return None


def _weekly(body: Mapping[str, Any], problem: Any) -> tuple[str | None, dict[str, Any]]:
    days = body.get("days")
    start_time = body.get("start_time")
    ok = True
    if not isinstance(days, list) or not days or not all(isinstance(d, str) and d.lower() in WEEKDAYS for d in days):
        problem("days", f"must be a list of week days: {', '.join(WEEKDAYS)}")
        ok = False
    match = _START_TIME.fullmatch(start_time) if isinstance(start_time, str) else None
    if match is None:
        problem("start_time", "must be a local time HH:MM, such as 02:00")
        ok = False
    if not ok:
        return None, {}
    assert match is not None and isinstance(days, list)
    ordered = [d for d in WEEKDAYS if d in {x.lower() for x in days}]
    hour, minute = int(match.group(1)), int(match.group(2))
    return f"{minute} {hour} * * {','.join(ordered)}", {"days": ordered, "startTime": start_time}


def _cron(raw: Any, problem: Any) -> str | None:
    if not isinstance(raw, str) or len(raw) > 120:
        problem("cron", "must be a five-field cron expression such as '0 3 * * sun'")
        return None
    expression = " ".join(raw.split())
    try:
        _trigger(expression)
    except ValueError as exc:
        problem("cron", f"must be a five-field cron expression such as '0 3 * * sun' ({exc})")
        return None
    return expression


def _check_recurrence(expression: str, name: str, problem: Any) -> None:
    """Refuse schedules that never fire or fire more than once an hour (checked over 200 firings).

    A five-field cron has no year, so any starting point shows its pattern: a fixed one keeps
    validation independent of the clock.
    """
    trigger = _trigger(expression)
    fire = trigger.get_next_fire_time(None, _RECURRENCE_CHECK_FROM)
    if fire is None:
        problem(name, "never happens")
        return
    for _ in range(200):
        following = trigger.get_next_fire_time(fire, fire)
        if following is None:
            return
        if (following - fire).total_seconds() < MIN_RECURRENCE_SECONDS:
            problem(name, "may start at most once an hour")
            return
        fire = following


def _trigger(expression: str) -> CronTrigger:
    """The expression over wall-clock times (written as UTC, where the clock never jumps)."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expression, timezone=UTC)


def _local_firings(expression: str, zone: ZoneInfo, from_epoch: float) -> Iterator[float]:
    """Epoch seconds of the wall-clock times matching ``expression`` in ``zone``, from about ``from_epoch``."""
    trigger = _trigger(expression)
    # Start a day early in wall time: the zone's offset (at most a day) may put earlier wall times later.
    wall = datetime.fromtimestamp(from_epoch, zone).replace(tzinfo=UTC) - timedelta(days=1)
    fire = trigger.get_next_fire_time(None, wall)
    while fire is not None:
        yield fire.replace(tzinfo=zone).timestamp()  # fold=0: the first of a repeated wall time
        fire = trigger.get_next_fire_time(fire, fire)


def _window(row: Mapping[str, Any] | RowMapping) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=int(row["id"]),
        kind=row["kind"],
        reason=row["reason"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        cron=row["cron"],
        duration_seconds=row["duration_seconds"],
        timezone=row["timezone"],
        services=tuple(row["services"] or ()),
        schedule=row["schedule"] or {},
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def occurrences_of(windows: Iterable[MaintenanceWindow], start: float, end: float) -> list[MaintenanceOccurrence]:
    """Every occurrence of ``windows`` overlapping ``[start, end)``, by start time."""
    return sorted((o for w in windows for o in w.occurrences(start, end)), key=lambda o: (o.start, o.window_id))
