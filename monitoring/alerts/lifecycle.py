"""The alert lifecycle: inactive → pending → firing → resolved, one alert per rule and label
set, named by a stable fingerprint; and the ledger that keeps alerts and their history in
the store.

* inactive: no open alert for the fingerprint (the condition does not hold);
* pending: the condition holds, not yet for the rule's ``for``; if it stops holding
  before, the pending alert is dropped (it never was an alert);
* firing: it held for ``for``; it stays firing until the condition has not held for
  ``keep_firing_for`` (or an admin resolves it). While it is held open that way it is
  *cleared* (``cleared_at``): shown as firing, but neither repeated nor escalated, and its
  value is the latest evaluated one, never the breach's;
* resolved: the episode is over and kept as history for ALERT_RETENTION_DAYS. If the
  condition holds again, a new episode starts with the same fingerprint.

The fingerprint hashes the rule name and the labels but not the severity, so changing a
rule's severity changes its open alerts in place instead of resolving them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from monitoring.clock import isoformat
from monitoring.notify.model import ACKNOWLEDGE_COMMENT_ANNOTATION, ACKNOWLEDGED_BY_ANNOTATION, AlertSnapshot
from monitoring.notify.model import FIRING as SNAPSHOT_FIRING
from monitoring.notify.model import RESOLVED as SNAPSHOT_RESOLVED
from monitoring.security.pii import sanitise
from monitoring.store.alerts_tables import alert_events, alerts
from monitoring.store.database import Store

PENDING = "pending"
FIRING = "firing"
RESOLVED = "resolved"
STATES = (PENDING, FIRING, RESOLVED)
OPEN_STATES = (PENDING, FIRING)

# A resolved alert's annotation saying how it ended ("Resolved after 5 m 4 s: payment failure rate
# 0.0 % over 5 m"): its resolve notice's summary, the firing summary kept as ``firing_summary``.
RESOLUTION = "resolution"
FIRING_SUMMARY = "firing_summary"

# What an acknowledged alert's notifications add to its annotations: who (the key id) and why.
ACKNOWLEDGED_BY = ACKNOWLEDGED_BY_ANNOTATION
ACKNOWLEDGE_COMMENT = ACKNOWLEDGE_COMMENT_ANNOTATION

# Why a firing alert is not sent (the ``muted`` column is "<kind>:<what>").
SILENCE = "silence"
MAINTENANCE = "maintenance"
INHIBITION = "inhibition"


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the rule and its labels, severity excepted: stable across evaluations."""
    stable = sorted((k, v) for k, v in labels.items() if k != "severity")
    canonical = json.dumps({"rule": rule, "labels": stable}, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def group_labels(labels: Mapping[str, str], group_by: Iterable[str]) -> dict[str, str]:
    return {name: labels.get(name, "") for name in group_by}


def group_key(labels: Mapping[str, str], group_by: Iterable[str]) -> str:
    """The group labels as canonical JSON: alerts with equal keys are sent together."""
    return json.dumps(group_labels(labels, group_by), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def clean_strings(mapping: Mapping[str, str]) -> dict[str, str]:
    """Labels and annotations as stored and sent: through the PII sanitiser."""
    cleaned = sanitise(dict(mapping))
    assert isinstance(cleaned, dict)
    return {str(k): str(v) for k, v in cleaned.items()}


@dataclass
class Alert:
    """One alert episode, as stored in ``alerts``."""

    fingerprint: str
    rule: str
    state: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    group_key: str
    active_at: float
    last_active_at: float
    updated_at: float
    value: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str = ""
    resolve_comment: str = ""
    acknowledged_at: float | None = None
    acknowledged_by: str = ""
    ack_comment: str = ""
    notify_after: float | None = None
    first_notified_at: float | None = None
    last_notified_at: float | None = None
    notifications: int = 0
    escalated_at: float | None = None
    cleared_at: float | None = None
    muted: str = ""
    muted_since: float | None = None
    id: int | None = None
    # Not stored: set when a mute ends, so that the alert is sent at once.
    resend_now: bool = field(default=False, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Alert:
        values = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        values["labels"] = row["labels"]
        values["annotations"] = row["annotations"]
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("id", "resend_now")}
        row["labels"] = self.labels
        row["annotations"] = self.annotations
        row["open_fingerprint"] = self.fingerprint if self.state in OPEN_STATES else None
        return row

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.rule)

    @property
    def manual(self) -> bool:
        return self.rule == ""

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def cleared(self) -> bool:
        """Firing, but its condition no longer holds (kept open by keep_firing_for)."""
        return self.cleared_at is not None

    @property
    def group_labels(self) -> dict[str, str]:
        return dict(json.loads(self.group_key))

    def snapshot(self, generator_url: str = "") -> AlertSnapshot:
        """The alert as a notification carries it: an acknowledged alert says who and why, a resolved
        one how it ended instead of what fired."""
        resolved = self.state == RESOLVED
        annotations = dict(self.annotations)
        if resolved and annotations.get(RESOLUTION):
            annotations[FIRING_SUMMARY] = annotations.get("summary", self.name)
            annotations["summary"] = annotations.pop(RESOLUTION)
        if self.acknowledged:
            annotations[ACKNOWLEDGED_BY] = self.acknowledged_by
            if self.ack_comment:
                annotations[ACKNOWLEDGE_COMMENT] = self.ack_comment
        return AlertSnapshot(
            fingerprint=self.fingerprint,
            labels=dict(self.labels),
            annotations=annotations,
            starts_at=self.fired_at or self.active_at,
            status=SNAPSHOT_RESOLVED if resolved else SNAPSHOT_FIRING,
            ends_at=self.resolved_at if resolved else None,
            generator_url=generator_url,
        )

    def mute_json(self) -> dict[str, Any] | None:
        if not self.muted:
            return None
        kind, _, what = self.muted.partition(":")
        described: dict[str, Any] = {"by": kind, "since": isoformat(self.muted_since)}
        if kind == INHIBITION:
            described["source"] = what
        else:
            described["id"] = int(what) if what.isdigit() else what
        return described

    def to_json(self, escalate_after: float | None, repeat_interval: float) -> dict[str, Any]:
        notified = self.first_notified_at is not None
        told_again = self.state == FIRING and notified and not self.acknowledged and not self.muted and not self.cleared
        repeats = told_again
        escalates = told_again and escalate_after is not None and self.escalated_at is None
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "name": self.name,
            "rule": self.rule or None,
            "state": self.state,
            "severity": self.severity,
            "summary": self.annotations.get("summary", self.name),
            "resolution": self.annotations.get(RESOLUTION) if self.state == RESOLVED else None,
            "value": self.value,
            "labels": self.labels,
            "annotations": self.annotations,
            "group": self.group_labels,
            "activeAt": isoformat(self.active_at),
            "firedAt": isoformat(self.fired_at),
            "clearedAt": isoformat(self.cleared_at),
            "resolvedAt": isoformat(self.resolved_at),
            "resolvedBy": (self.resolved_by or "evaluation") if self.state == RESOLVED else None,
            "resolveComment": self.resolve_comment or None,
            "acknowledged": {"by": self.acknowledged_by, "at": isoformat(self.acknowledged_at),
                             "comment": self.ack_comment} if self.acknowledged else None,
            "muted": self.mute_json(),
            "notifications": {
                "sent": self.notifications,
                "firstAt": isoformat(self.first_notified_at),
                "lastAt": isoformat(self.last_notified_at),
                "nextRepeatAt": isoformat(self.last_notified_at + repeat_interval)
                if repeats and self.last_notified_at is not None else None,
            },
            "escalation": {
                "afterSeconds": escalate_after,
                "dueAt": isoformat(self.first_notified_at + escalate_after)
                if escalates and self.first_notified_at is not None and escalate_after is not None else None,
                "escalatedAt": isoformat(self.escalated_at),
            },
        }


@dataclass(frozen=True)
class AlertEvent:
    alert_id: int
    at: float
    kind: str
    actor: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": isoformat(self.at), "kind": self.kind, "actor": self.actor or None, "detail": self.detail}


class AlertLedger:
    """Alerts and their events in the store. Every method takes the caller's connection, so that a
    state change, its history and the notifications it causes commit (or roll back) together."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open_alerts(self, conn: Connection) -> list[Alert]:
        """Pending and firing alerts, locked for this transaction (PostgreSQL; SQLite's write lock covers it)."""
        query = select(alerts).where(alerts.c.state.in_(OPEN_STATES)).order_by(alerts.c.id).with_for_update()
        return [Alert.from_row(row) for row in conn.execute(query).mappings()]

    def find_open(self, conn: Connection, *, alert_id: int | None = None, fingerprint: str | None = None) -> Alert | None:
        query = select(alerts).where(alerts.c.state.in_(OPEN_STATES))
        if alert_id is not None:
            query = query.where(alerts.c.id == alert_id)
        if fingerprint is not None:
            query = query.where(alerts.c.fingerprint == fingerprint)
        row = conn.execute(query.with_for_update()).mappings().first()
        return Alert.from_row(row) if row else None

    def get(self, conn: Connection, alert_id: int) -> Alert | None:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        return Alert.from_row(row) if row else None

    def insert(self, conn: Connection, alert: Alert) -> Alert | None:
        """Store a new open alert; None when another writer opened the same fingerprint first."""
        inserted = conn.execute(
            self.store.insert(alerts).values(**alert.to_row()).on_conflict_do_nothing(index_elements=["open_fingerprint"])
        )
        if not inserted.rowcount:
            return None
        row_id = conn.execute(
            select(alerts.c.id).where(alerts.c.open_fingerprint == alert.fingerprint)
        ).scalar_one()
        return replace(alert, id=int(row_id))

    def save(self, conn: Connection, alert: Alert) -> None:
        assert alert.id is not None
        conn.execute(update(alerts).where(alerts.c.id == alert.id).values(**alert.to_row()))

    def drop(self, conn: Connection, alert: Alert) -> None:
        """Forget a pending alert that never fired, and its events."""
        assert alert.id is not None
        conn.execute(delete(alert_events).where(alert_events.c.alert_id == alert.id))
        conn.execute(delete(alerts).where(alerts.c.id == alert.id))

    def event(self, conn: Connection, alert: Alert, kind: str, at: float, actor: str = "", **detail: Any) -> None:
        assert alert.id is not None
        conn.execute(
            alert_events.insert().values(
                alert_id=alert.id, at=at, kind=kind, actor=actor[:64],
                detail=sanitise(detail),
            )
        )

    # --- reading (API) -------------------------------------------------------------------------

    def listing(
        self,
        *,
        states: Iterable[str] = STATES,
        severity: str | None = None,
        fingerprint: str | None = None,
        before_id: int | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first."""
        query = select(alerts).where(alerts.c.state.in_(list(states)))
        if severity is not None:
            query = query.where(alerts.c.severity == severity)
        if fingerprint is not None:
            query = query.where(alerts.c.fingerprint == fingerprint)
        if before_id is not None:
            query = query.where(alerts.c.id < before_id)
        if since is not None:
            query = query.where(or_(alerts.c.resolved_at.is_(None), alerts.c.resolved_at >= since))
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(limit)).mappings().all()
        return [Alert.from_row(row) for row in rows]

    def events_of(self, alert_ids: Iterable[int]) -> dict[int, list[AlertEvent]]:
        ids = list(alert_ids)
        found: dict[int, list[AlertEvent]] = {i: [] for i in ids}
        if not ids:
            return found
        with self.store.read() as conn:
            rows = conn.execute(
                select(alert_events).where(alert_events.c.alert_id.in_(ids)).order_by(alert_events.c.id)
            ).mappings()
            for row in rows:
                found[int(row["alert_id"])].append(
                    AlertEvent(int(row["alert_id"]), row["at"], row["kind"], row["actor"], row["detail"] or {})
                )
        return found
