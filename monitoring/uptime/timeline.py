"""The availability timeline: health rounds folded into segments of one overall status, and incidents.

Every health round (the leader's, or an admin's refresh in any worker) stores its results;
then ``advance()`` folds every round newer than the cursor into ``uptime_segments`` and moves
the incidents, in one transaction per batch under a lock on the cursor row, so rounds in
several workers take turns and each round is folded once. It reads the rounds back from
``health_results``, so a fold that failed (the store blinked) is caught up by the next one.

A round's overall status is the health status of its results (``unhealthy`` when a critical
dependency is unhealthy). It vouches for the time until the next round, but for at most
``grace`` seconds (2.5 x HEALTH_CHECK_INTERVAL): a longer silence means the monitor itself
was not running, and the rest of it is unknown, never assumed up.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection

from monitoring.clock import Clock
from monitoring.health.status import DEGRADED, HEALTHY, UNHEALTHY, Weighed, overall_status
from monitoring.store.database import Store
from monitoring.store.health_tables import health_results, health_status
from monitoring.store.uptime_tables import uptime_segments, uptime_state
from monitoring.uptime.incidents import Incident, add_services, close_incident, describe_cause, find_open, open_incident

GRACE_FACTOR = 2.5
UP_STATUSES = (HEALTHY, DEGRADED)
CURSOR = "timeline"
ROUNDS_PER_TRANSACTION = 500


@dataclass(frozen=True)
class Round:
    """One health round as the timeline sees it."""

    at: float
    status: str
    down: dict[str, str]  # critical dependencies that were unhealthy -> their public error
    unhealthy: tuple[str, ...]  # every unhealthy dependency, critical or not


@dataclass(frozen=True)
class CoveredSpan:
    """A stretch of time the rounds vouch for, with the overall status they found."""

    start: float
    end: float
    status: str
    down_services: tuple[str, ...]

    @property
    def is_up(self) -> bool:
        return self.status in UP_STATUSES


@dataclass
class _Segment:
    id: int
    started_at: float
    last_at: float
    status: str
    down_services: str


@dataclass
class _Cursor:
    last_round_at: float | None
    segment: _Segment | None
    incident: Incident | None


def grace_for(health_check_interval: float) -> float:
    """How long after a round it still vouches for the status it found."""
    return GRACE_FACTOR * health_check_interval


class AvailabilityTimeline:
    def __init__(self, store: Store, clock: Clock, grace: float) -> None:
        self.store = store
        self.clock = clock
        self.grace = grace

    # --- writing -------------------------------------------------------------------------------

    def advance(self) -> int:
        """Fold every round not folded yet into the segments and incidents; returns how many."""
        folded = 0
        while True:
            with self.store.write() as conn:
                cursor = self._lock_cursor(conn)
                rounds = read_rounds(conn, cursor.last_round_at, ROUNDS_PER_TRANSACTION)
                now = self.clock.now()
                for health_round in rounds:
                    self._fold(conn, cursor, health_round, now)
                if rounds:
                    conn.execute(
                        update(uptime_state)
                        .where(uptime_state.c.name == CURSOR)
                        .values(
                            last_round_at=cursor.last_round_at,
                            segment_id=cursor.segment.id if cursor.segment else None,
                            updated_at=now,
                        )
                    )
            folded += len(rounds)
            if len(rounds) < ROUNDS_PER_TRANSACTION:
                return folded

    def _lock_cursor(self, conn: Connection) -> _Cursor:
        conn.execute(
            self.store.insert(uptime_state)
            .values(name=CURSOR, updated_at=self.clock.now())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        # FOR UPDATE: on PostgreSQL a second advance waits here until the first commits (SQLite's
        # write transaction already serialises writers), then sees the rounds the first folded.
        row = conn.execute(select(uptime_state).where(uptime_state.c.name == CURSOR).with_for_update()).mappings().one()
        segment = None
        if row["segment_id"] is not None:
            found = conn.execute(select(uptime_segments).where(uptime_segments.c.id == row["segment_id"])).mappings().first()
            if found is not None:
                segment = _Segment(found["id"], found["started_at"], found["last_at"], found["status"],
                                   found["down_services"])
        return _Cursor(row["last_round_at"], segment, find_open(conn))

    def _fold(self, conn: Connection, cursor: _Cursor, health_round: Round, now: float) -> None:
        at = health_round.at
        down = ",".join(sorted(health_round.down))
        segment = cursor.segment
        if segment is not None and at - segment.last_at <= self.grace:
            if (segment.status, segment.down_services) == (health_round.status, down):
                conn.execute(update(uptime_segments).where(uptime_segments.c.id == segment.id).values(last_at=at))
                segment.last_at = at
            else:
                conn.execute(update(uptime_segments).where(uptime_segments.c.id == segment.id).values(ended_at=at))
                cursor.segment = self._new_segment(conn, health_round, down)
        else:
            if segment is not None:  # silence longer than the grace: the old segment vouches for the grace only
                conn.execute(
                    update(uptime_segments)
                    .where(uptime_segments.c.id == segment.id)
                    .values(ended_at=segment.last_at + self.grace)
                )
            cursor.segment = self._new_segment(conn, health_round, down)
        cursor.last_round_at = at

        if health_round.status == UNHEALTHY:
            if cursor.incident is None:
                cursor.incident = open_incident(
                    self.store, conn, at, describe_cause(health_round.down), health_round.unhealthy, now
                )
            else:
                cursor.incident = add_services(conn, cursor.incident, health_round.unhealthy, now)
        elif cursor.incident is not None:
            close_incident(conn, cursor.incident, at, now)
            cursor.incident = None

    def _new_segment(self, conn: Connection, health_round: Round, down: str) -> _Segment:
        values = {
            "started_at": health_round.at,
            "last_at": health_round.at,
            "ended_at": None,
            "grace": self.grace,
            "status": health_round.status,
            "down_services": down,
        }
        inserted = conn.execute(insert(uptime_segments).values(**values)).inserted_primary_key
        assert inserted is not None  # an INSERT of one row always has its key
        new_id = inserted[0]
        return _Segment(int(new_id), health_round.at, health_round.at, health_round.status, down)

    # --- reading -------------------------------------------------------------------------------

    def covered_spans(self, start: float, end: float, now: float | None = None) -> list[CoveredSpan]:
        """What the rounds vouch for within ``[start, min(end, now))``, oldest first."""
        end = min(end, self.clock.now() if now is None else now)
        if end <= start:
            return []
        t = uptime_segments.c
        covered_until = func.coalesce(t.ended_at, t.last_at + t.grace)
        query = select(uptime_segments).where(t.started_at < end, covered_until > start).order_by(t.started_at)
        spans = []
        with self.store.read() as conn:
            for row in conn.execute(query).mappings():
                until = row["ended_at"] if row["ended_at"] is not None else row["last_at"] + row["grace"]
                low, high = max(start, row["started_at"]), min(end, until)
                if high > low:
                    down = tuple(s for s in row["down_services"].split(",") if s)
                    spans.append(CoveredSpan(low, high, row["status"], down))
        return spans

    def up_since(self, now: float | None = None) -> float | None:
        """When the current up period began: None when the service is down, or nothing vouches for ``now``."""
        now = self.clock.now() if now is None else now
        t = uptime_segments.c
        since: float | None = None
        before: float | None = None
        with self.store.read() as conn:
            while True:
                query = select(uptime_segments).order_by(t.started_at.desc()).limit(200)
                if before is not None:
                    query = query.where(t.started_at < before)
                rows = conn.execute(query).mappings().all()
                for row in rows:
                    if since is None:  # the newest segment must be up and still vouching
                        vouches = row["ended_at"] is None and row["last_at"] + row["grace"] >= now
                        if not vouches or row["status"] not in UP_STATUSES:
                            return None
                    elif row["status"] not in UP_STATUSES or row["ended_at"] != since:
                        return since
                    since = row["started_at"]
                if len(rows) < 200:
                    return since
                before = rows[-1]["started_at"]

    def latest_round_at(self) -> float | None:
        with self.store.read() as conn:
            return conn.execute(select(func.max(uptime_segments.c.last_at))).scalar()


def read_rounds(conn: Connection, after: float | None, limit: int) -> list[Round]:
    """The rounds stored after ``after`` (results sharing a ``checked_at``), oldest first."""
    t = health_results.c
    times_query = select(t.checked_at).distinct().order_by(t.checked_at).limit(limit)
    if after is not None:
        times_query = times_query.where(t.checked_at > after)
    times = [row[0] for row in conn.execute(times_query)]
    if not times:
        return []
    rows = conn.execute(select(health_status.c.service, health_status.c.critical))
    critical = {row.service: bool(row.critical) for row in rows}
    by_time: dict[float, dict[str, Any]] = defaultdict(dict)
    rows = conn.execute(
        select(t.service, t.status, t.error, t.checked_at)
        .where(and_(t.checked_at >= times[0], t.checked_at <= times[-1]))
        .order_by(t.checked_at, t.id)
    )
    for row in rows:
        by_time[row.checked_at][row.service] = row  # a later row of the same round wins
    return [_round(at, by_time[at], critical) for at in times]


def _round(at: float, results: Mapping[str, Any], critical: Mapping[str, bool]) -> Round:
    status = overall_status(Weighed(r.status, critical.get(name, False)) for name, r in results.items())
    down = {name: r.error for name, r in results.items() if r.status == UNHEALTHY and critical.get(name, False)}
    unhealthy = tuple(sorted(name for name, r in results.items() if r.status == UNHEALTHY))
    return Round(at, status, down, unhealthy)
