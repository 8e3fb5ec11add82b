"""Silences: label matchers, a start and an end, who made it and why. An alert a silence
matches is still tracked and shown, just not sent; when the silence ends (or is expired by
hand) and the alert still fires, the next evaluation sends it at once."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from monitoring.alerts.admin import Actor, InvalidSilence
from monitoring.alerts.matchers import Matcher, matches_all, parse_matchers
from monitoring.alerts.matchers import to_json as matchers_json
from monitoring.clock import Clock, isoformat, parse_timestamp
from monitoring.durations import DAY, MINUTE, parse_duration
from monitoring.security.audit import ADMIN_ACTION, AuditLog
from monitoring.security.pii import sanitise_text
from monitoring.store.alerts_tables import alert_silences
from monitoring.store.database import Store

PENDING, ACTIVE, EXPIRED = "pending", "active", "expired"
STATES = (PENDING, ACTIVE, EXPIRED)
MAX_SILENCE = 90 * DAY
MAX_COMMENT = 500
SILENCE_FIELDS = ("matchers", "starts_at", "ends_at", "duration", "comment")


class SilenceNotFound(LookupError):
    pass


class SilenceExpired(ValueError):
    pass


@dataclass(frozen=True)
class SilenceSpec:
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    comment: str


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_by: str

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return PENDING
        return ACTIVE if now < self.ends_at else EXPIRED

    def silences(self, labels: Mapping[str, str], now: float) -> bool:
        return self.state(now) == ACTIVE and matches_all(self.matchers, labels)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state(now),
            "matchers": matchers_json(self.matchers),
            "startsAt": isoformat(self.starts_at),
            "endsAt": isoformat(self.ends_at),
            "createdBy": self.created_by,
            "createdAt": isoformat(self.created_at),
            "comment": self.comment,
            "expiredBy": self.expired_by or None,
        }


def _instant(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError
    value = parse_timestamp(raw) if isinstance(raw, str) else float(raw)
    if not math.isfinite(value) or not 0 <= value < 253402300800:
        raise ValueError
    return value


def parse_silence(body: Mapping[str, Any], now: float) -> SilenceSpec:
    """``matchers`` (required), ``comment`` (required), ``starts_at`` (default now), and ``ends_at`` or ``duration``."""
    problems: list[dict[str, str]] = []

    def problem(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    matchers: tuple[Matcher, ...] = ()
    try:
        matchers = parse_matchers(body.get("matchers"), required=True)
    except ValueError as exc:
        problem("matchers", str(exc))
    comment = body.get("comment")
    if not isinstance(comment, str) or not comment.strip() or len(comment) > MAX_COMMENT:
        problem("comment", f"is required: why, in 1 to {MAX_COMMENT} characters")
        comment = ""
    starts_at = now
    if body.get("starts_at") is not None:
        try:
            starts_at = _instant(body["starts_at"])
        except ValueError:
            problem("starts_at", "must be an RFC 3339 timestamp such as 2026-11-14T02:00:00Z")
    ends_at: float | None = None
    if (body.get("ends_at") is None) == (body.get("duration") is None):
        problem("ends_at", "give either ends_at (an RFC 3339 timestamp) or duration (such as 2h)")
    elif body.get("ends_at") is not None:
        try:
            ends_at = _instant(body["ends_at"])
        except ValueError:
            problem("ends_at", "must be an RFC 3339 timestamp such as 2026-11-14T04:00:00Z")
    else:
        try:
            ends_at = starts_at + parse_duration(body["duration"], MINUTE, MAX_SILENCE)
        except ValueError as exc:
            problem("duration", str(exc).replace("expected", "must be", 1))
    if ends_at is not None and not problems:
        if ends_at <= max(starts_at, now):
            problem("ends_at", "must be after starts_at and in the future")
        elif ends_at - starts_at > MAX_SILENCE:
            problem("ends_at", "a silence may last at most 90 days")
    if problems:
        raise InvalidSilence(problems)
    assert ends_at is not None
    return SilenceSpec(matchers, starts_at, ends_at, sanitise_text(comment.strip()))


class Silences:
    """Silences in the store; creating and expiring one are audited admin actions."""

    def __init__(self, store: Store, clock: Clock, audit: AuditLog) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit

    def create(self, spec: SilenceSpec, actor: Actor) -> Silence:
        now = self.clock.now()
        values = {
            "matchers": matchers_json(spec.matchers),
            "starts_at": spec.starts_at,
            "ends_at": spec.ends_at,
            "created_by": actor.who[:64],
            "comment": spec.comment,
            "created_at": now,
            "expired_by": "",
        }
        with self.store.write() as conn:
            inserted = conn.execute(alert_silences.insert().values(**values)).inserted_primary_key
            assert inserted is not None  # an INSERT of one row always has its key
            new_id = inserted[0]
            silence = _silence({"id": new_id, **values})
            self.audit.record(ADMIN_ACTION, actor.who, "alerts.silence", client_ip=actor.client_ip, path=actor.path,
                              conn=conn, detail={"silence": silence.to_json(now)})
        return silence

    def expire(self, silence_id: int, actor: Actor) -> Silence:
        """End a silence now (a pending one is ended before it begins)."""
        now = self.clock.now()
        with self.store.write() as conn:
            row = conn.execute(
                select(alert_silences).where(alert_silences.c.id == silence_id).with_for_update()
            ).mappings().first()
            if row is None:
                raise SilenceNotFound(silence_id)
            silence = _silence(row)
            if silence.state(now) == EXPIRED:
                raise SilenceExpired(silence_id)
            conn.execute(
                update(alert_silences).where(alert_silences.c.id == silence_id)
                .values(ends_at=now, starts_at=min(silence.starts_at, now), expired_by=actor.who[:64])
            )
            silence = _silence({**row, "ends_at": now, "starts_at": min(silence.starts_at, now),
                                "expired_by": actor.who[:64]})
            self.audit.record(ADMIN_ACTION, actor.who, "alerts.expire_silence", client_ip=actor.client_ip,
                              path=actor.path, conn=conn, detail={"silence": silence.to_json(now)})
        return silence

    def active(self, conn: Connection, now: float) -> list[Silence]:
        query = select(alert_silences).where(alert_silences.c.starts_at <= now, alert_silences.c.ends_at > now)
        return [_silence(row) for row in conn.execute(query).mappings()]

    def listing(self, state: str | None = None, limit: int = 200) -> list[Silence]:
        """Newest first; ``state`` filters (expired ones are kept ALERT_RETENTION_DAYS)."""
        now = self.clock.now()
        query = select(alert_silences).order_by(alert_silences.c.id.desc())
        if state == ACTIVE:
            query = query.where(alert_silences.c.starts_at <= now, alert_silences.c.ends_at > now)
        elif state == PENDING:
            query = query.where(alert_silences.c.starts_at > now)
        elif state == EXPIRED:
            query = query.where(alert_silences.c.ends_at <= now)
        with self.store.read() as conn:
            return [_silence(row) for row in conn.execute(query.limit(limit)).mappings()]


def _silence(row: Mapping[str, Any] | RowMapping) -> Silence:
    return Silence(
        id=int(row["id"]),
        matchers=parse_matchers(row["matchers"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expired_by=row["expired_by"] or "",
    )
