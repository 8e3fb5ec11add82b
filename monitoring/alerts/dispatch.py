"""Which notifications the firing alerts cause now, decided inside the write transaction of
the change and enqueued in it (DESIGN invariant 4: the change and its notifications commit
together, or neither does).

Timings are per alert: its severity's, with its rule's overrides laid over them
(``monitoring.alerts.policy``).

* Muting. A firing alert matched by an active silence, inside a maintenance window that
  covers its ``service`` (an unscoped window covers every alert), or inhibited by another
  firing alert is muted: tracked and shown, never sent, never escalated. When the mute ends
  and the alert still fires, it is sent at once (no group wait, no repeat interval).
* Cleared. A firing alert whose condition no longer holds (kept open by ``keep_firing_for``)
  is neither sent, repeated nor escalated: the receivers hear next of it when it resolves,
  or when the condition returns.
* Grouping. Alerts with the same group labels (the rule's ``group_by``, by default
  ``service``) go out as one notification: a new alert waits its group wait for others of
  its group (critical: none); one that joins a group already told waits until the group
  interval after the group's last notification. When the first unsent alert of a group is
  due, every unsent alert of the group goes with it.
* Repeat. A firing, unacknowledged, unmuted, uncleared alert is sent again its repeat
  interval after its last notification.
* Escalation. Such an alert escalates once, its escalation delay after it was first sent
  (critical: at once, with its first notification), to the escalation channel;
  ``escalated_at`` is recorded on the alert.
* Acknowledged alerts are neither repeated nor escalated, and an acknowledged alert that was
  never sent is not sent at all: whoever acknowledged it already knows.

``next_due`` says when the next of these decisions falls due, so that the engine can run a
dispatch at that moment instead of waiting for the next evaluation.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from monitoring.alerts.inhibition import InhibitRule, inhibited_by
from monitoring.alerts.lifecycle import FIRING, INHIBITION, MAINTENANCE, SILENCE, Alert, AlertLedger
from monitoring.alerts.policy import Timing
from monitoring.alerts.silences import Silence
from monitoring.notify.model import ACKNOWLEDGED, ESCALATED, Notification
from monitoring.notify.model import FIRING as FIRING_EVENT
from monitoring.notify.model import RESOLVED as RESOLVED_EVENT
from monitoring.notify.outbox import Outbox

TimingOf = Callable[[Alert], Timing]


@dataclass
class Outgoing:
    """What one transaction enqueued: the notifications, and the keys of their deliveries (which
    the committing process may send at once, once the transaction has committed)."""

    notifications: list[Notification] = field(default_factory=list)
    delivery_keys: list[str] = field(default_factory=list)


@dataclass
class DispatchRun:
    """What one dispatch decided (for the job's result and the tests)."""

    notifications: list[Notification] = field(default_factory=list)
    muted: int = 0
    unmuted: int = 0
    next_due: float | None = None  # the next moment a decision falls due (None: none pending)

    def count(self, event: str) -> int:
        return sum(1 for n in self.notifications if n.event == event)


class Notifier:
    """Builds notifications for alerts and enqueues them with the caller's connection."""

    def __init__(self, outbox: Outbox, ledger: AlertLedger, external_url: str = "") -> None:
        self.outbox = outbox
        self.ledger = ledger
        self.external_url = external_url.rstrip("/")

    def generator_url(self, alert: Alert) -> str:
        if not self.external_url:
            return ""
        return f"{self.external_url}/api/monitoring/alerts?action=history&fingerprint={alert.fingerprint}"

    def has_receiver(self, event: str, group: Sequence[Alert]) -> bool:
        """Whether any configured channel would get this notification (the outbox's own routing)."""
        probe = Notification(id="probe", event=event,
                             alerts=tuple(a.snapshot(self.generator_url(a)) for a in group),
                             group_labels=group[0].group_labels)
        return self.outbox.has_receiver(probe)

    def send(self, conn: Connection, outgoing: Outgoing, event: str, group: Sequence[Alert], now: float,
             ordinals: Sequence[int], actor: str = "") -> Notification:
        """One notification about ``group`` (alerts of one group key); recorded on each alert's history."""
        parts = [f"{a.id}.{n}" for a, n in zip(group, ordinals, strict=False)]
        if len(group) == 1:
            notification_id = f"{group[0].fingerprint}:{event}:{parts[0]}"
        else:
            digest = hashlib.sha256("|".join(sorted(parts)).encode()).hexdigest()[:20]
            notification_id = f"group-{digest}:{event}"
        notification = Notification(
            id=notification_id,
            event=event,
            alerts=tuple(a.snapshot(self.generator_url(a)) for a in group),
            group_labels=group[0].group_labels,
            escalated=any(a.escalated_at is not None for a in group),
        )
        keys = self.outbox.enqueue(conn, notification)
        outgoing.notifications.append(notification)
        outgoing.delivery_keys += keys
        for alert in group:
            self.ledger.event(conn, alert, "notified", now, actor, notification=notification_id, event=event,
                              alerts=len(group), deliveries=len(keys))
        return notification


def by_group(alerts: Iterable[Alert]) -> dict[str, list[Alert]]:
    groups: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        groups[alert.group_key].append(alert)
    return groups


def mute_reason(
    alert: Alert,
    now: float,
    silences: Sequence[Silence],
    maintenance: Sequence[Any],
    inhibitions: Sequence[InhibitRule],
    firing: Sequence[tuple[str, dict[str, str]]],
) -> str:
    """``silence:<id>``, ``maintenance:<window id>``, ``inhibition:<source fingerprint>``, or "" (not muted)."""
    for silence in silences:
        if silence.silences(alert.labels, now):
            return f"{SILENCE}:{silence.id}"
    service = alert.labels.get("service") or None
    for occurrence in maintenance:
        if occurrence.covers(service):
            return f"{MAINTENANCE}:{occurrence.window_id}"
    source = inhibited_by(inhibitions, alert.labels, alert.fingerprint, firing)
    return f"{INHIBITION}:{source}" if source else ""


def first_send_at(alert: Alert, group: Sequence[Alert], timing: Timing) -> float:
    """When an unsent firing alert's first notification is due: its group wait after it fired
    (``notify_after``), and in a group already told, the group interval after the group's last
    notification."""
    due = alert.notify_after if alert.notify_after is not None else (alert.fired_at or alert.active_at)
    told = [a.last_notified_at for a in group if a is not alert and a.last_notified_at is not None]
    return max(due, max(told) + timing.group_interval) if told else due


def _sendable(firing: Sequence[Alert]) -> list[Alert]:
    return [a for a in firing if not a.muted and not a.acknowledged and not a.cleared]


def dispatch(
    conn: Connection,
    open_alerts: Sequence[Alert],
    now: float,
    timing_of: TimingOf,
    notifier: Notifier,
    silences: Sequence[Silence],
    maintenance: Sequence[Any],
    inhibitions: Sequence[InhibitRule],
    outgoing: Outgoing,
) -> DispatchRun:
    """Decide and enqueue what the open alerts cause now; every changed alert is saved."""
    run = DispatchRun()
    ledger = notifier.ledger
    firing = [a for a in open_alerts if a.state == FIRING]
    firing_labels = [(a.fingerprint, a.labels) for a in firing]
    changed: dict[int, Alert] = {}
    sent_before = len(outgoing.notifications)

    for alert in firing:
        reason = mute_reason(alert, now, silences, maintenance, inhibitions, firing_labels)
        if reason == alert.muted:
            continue
        if reason:
            ledger.event(conn, alert, "muted", now, reason=reason)
            run.muted += 1
        else:
            ledger.event(conn, alert, "unmuted", now, was=alert.muted)
            alert.resend_now = True  # still firing when the mute ended: sent at once
            run.unmuted += 1
        alert.muted, alert.muted_since = reason, (now if reason else None)
        changed[id(alert)] = alert

    firing_groups = by_group(firing)
    sendable = _sendable(firing)
    for key, group in by_group(sendable).items():
        unsent = [a for a in group if a.first_notified_at is None]
        first_due = any(
            a.resend_now or first_send_at(a, firing_groups[key], timing_of(a)) <= now for a in unsent
        )
        outgoing_alerts = [
            a for a in group
            if (a.first_notified_at is None and first_due)
            or (a.first_notified_at is not None
                and (a.resend_now or now >= (a.last_notified_at or now) + timing_of(a).repeat_interval))
        ]
        if not outgoing_alerts:
            continue
        ordinals = [a.notifications + 1 for a in outgoing_alerts]
        if not notifier.has_receiver(FIRING_EVENT, outgoing_alerts):
            # Nothing would carry it (no channel takes this severity): the alert stays unsent,
            # so it goes out as soon as a channel does, not one repeat interval later.
            continue
        notifier.send(conn, outgoing, FIRING_EVENT, outgoing_alerts, now, ordinals)
        for alert in outgoing_alerts:
            alert.notifications += 1
            alert.first_notified_at = alert.first_notified_at or now
            alert.last_notified_at = now
            alert.resend_now = False
            changed[id(alert)] = alert

    due: list[Alert] = []
    for alert in sendable:
        delay = timing_of(alert).escalate_after
        if (
            delay is not None
            and alert.escalated_at is None
            and alert.first_notified_at is not None
            and now >= alert.first_notified_at + delay
        ):
            due.append(alert)
    for group in by_group(due).values():
        for alert in group:
            alert.escalated_at = now
            changed[id(alert)] = alert
        notifier.send(conn, outgoing, ESCALATED, group, now, [1] * len(group))

    for alert in changed.values():
        alert.updated_at = now
        ledger.save(conn, alert)
    run.notifications = outgoing.notifications[sent_before:]
    run.next_due = next_due(firing, now, timing_of)
    return run


def next_due(firing: Sequence[Alert], now: float, timing_of: TimingOf) -> float | None:
    """The earliest moment after ``now`` at which a dispatch would send something: a group wait
    or group interval ending, a repeat, an escalation. (What was due already and was not sent,
    for want of a channel, waits for the next evaluation rather than a busy loop.)"""
    groups = by_group(firing)
    moments: list[float] = []
    for alert in _sendable(firing):
        timing = timing_of(alert)
        if alert.first_notified_at is None:
            moments.append(first_send_at(alert, groups[alert.group_key], timing))
            continue
        if alert.last_notified_at is not None:
            moments.append(alert.last_notified_at + timing.repeat_interval)
        if timing.escalate_after is not None and alert.escalated_at is None:
            moments.append(alert.first_notified_at + timing.escalate_after)
    future = [m for m in moments if m > now]
    return min(future) if future else None


def resolved_notifications(conn: Connection, resolved: Sequence[Alert], now: float, notifier: Notifier,
                           outgoing: Outgoing, actor: str = "") -> list[Notification]:
    """One resolved notification per group (and escalation) for the alerts whose firing was sent.

    A resolved notification follows every firing one, even under a silence or in maintenance:
    a receiver told that something fires is told when it stops (PagerDuty closes the incident).
    """
    told = [a for a in resolved if a.first_notified_at is not None]
    sent = []
    groups: dict[tuple[str, bool], list[Alert]] = defaultdict(list)
    for alert in told:
        groups[(alert.group_key, alert.escalated_at is not None)].append(alert)
    for group in groups.values():
        sent.append(notifier.send(conn, outgoing, RESOLVED_EVENT, group, now, [1] * len(group), actor))
    return sent


def acknowledged_notification(conn: Connection, alert: Alert, now: float, notifier: Notifier,
                              outgoing: Outgoing, actor: str) -> Notification | None:
    """PagerDuty ``acknowledge`` (and the other channels' note, with who and why) for an alert
    its receivers were told about."""
    if alert.first_notified_at is None:
        return None
    return notifier.send(conn, outgoing, ACKNOWLEDGED, [alert], now, [1], actor)
