"""The alerting engine: the leader's evaluation job, and the admin actions on alerts.

``evaluate()`` (every ALERT_EVALUATION_INTERVAL, in the lease holder only):

1. reads each enabled rule's figure over its window (outside any write transaction);
2. in ONE write transaction: locks the open alerts, moves each through its lifecycle
   (pending, firing, cleared, resolved), enqueues the resolved notifications (and cancels
   what was still waiting to be sent about them), then dispatches (muting, grouping,
   repeats, escalation) and enqueues what that decides. A failure anywhere rolls back the
   state changes and their notifications together.

The actions (``trigger``, ``acknowledge``, ``resolve``) run in the answering worker, each in
its own transaction with its audit entry and the notification it causes; a trigger
dispatches in its own transaction, so a critical one is enqueued at once.

After each transaction that enqueued deliveries, the engine hands their keys to
``outbox.deliver_soon``: the committing process sends them at once, under the outbox's claim
(exactly one sender per row, whoever else looks). And it asks ``wake_at`` for a dispatch at
the next moment something falls due (a group wait ending, a repeat, an escalation), so that
``sendsAfter`` is when it is really sent, not the next evaluation after it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from monitoring.alerts.admin import Actor
from monitoring.alerts.dispatch import (
    DispatchRun,
    Notifier,
    Outgoing,
    acknowledged_notification,
    by_group,
    dispatch,
    first_send_at,
    resolved_notifications,
)
from monitoring.alerts.figures import FigureReader, Sample, reading
from monitoring.alerts.inhibition import Inhibitions
from monitoring.alerts.lifecycle import (
    FIRING,
    OPEN_STATES,
    PENDING,
    RESOLUTION,
    RESOLVED,
    Alert,
    AlertLedger,
    clean_strings,
    fingerprint,
    group_key,
)
from monitoring.alerts.matchers import matches_all
from monitoring.alerts.policy import AlertPolicy, Timing, describe_span
from monitoring.alerts.rules import MANUAL_ALERT, Rule, RuleBook
from monitoring.alerts.silences import Silences
from monitoring.clock import Clock
from monitoring.durations import format_duration
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.notify.model import FIRING as FIRING_EVENT
from monitoring.notify.model import SEVERITIES, Notification
from monitoring.security.audit import ADMIN_ACTION, AuditLog
from monitoring.security.pii import sanitise_text
from monitoring.store.alerts_tables import alert_rule_status, alerts
from monitoring.store.database import Store

log = logging.getLogger(__name__)

MANUAL_GROUP_BY = ("service",)
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class AlertNotFound(LookupError):
    pass


class AlertStateConflict(ValueError):
    """The alert is not in a state that allows the action (e.g. acknowledging a pending alert)."""


@dataclass(frozen=True)
class Breach:
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float


@dataclass
class RuleOutcome:
    samples: int = 0
    breaches: dict[str, Breach] = field(default_factory=dict)
    observed: dict[str, float] = field(default_factory=dict)  # every label set's value, breaching or not
    error: str = ""


@dataclass
class EvaluationRun:
    """What one evaluation did: for the job's log and the tests."""

    at: float
    outcomes: dict[str, RuleOutcome]
    opened: list[str] = field(default_factory=list)  # fingerprints that went pending
    fired: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)  # firing, no longer breaching, kept by keep_firing_for
    notifications: list[Notification] = field(default_factory=list)
    dispatch: DispatchRun | None = None

    def count(self, event: str) -> int:
        return sum(1 for n in self.notifications if n.event == event)


@dataclass(frozen=True)
class Triggered:
    """What a manual trigger did: the alert, whether it is new, and when it is (or was) sent."""

    alert: Alert
    created: bool
    sends_at: float | None  # None: not new, muted, or no channel would carry it


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e15 else f"{value:.3e}"


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def render(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders filled from ``values``; unknown names become empty (never format() on input)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def alert_labels(rule: Rule, sample: Sample) -> dict[str, str]:
    return {**sample.labels, **rule.labels, "alertname": rule.name, "severity": rule.severity}


def resolution(alert: Alert, now: float, rule: Rule | None, actor: str = "", comment: str = "",
               why: str = "") -> str:
    """The resolve notice's sentence: how long it lasted, and what the figure reads now
    ("Resolved after 5 m 4 s: payment failure rate 0.0 % over 5 m")."""
    lasted = describe_span(now - (alert.fired_at or alert.active_at))
    if actor:
        return f"Resolved by {actor} after {lasted}" + (f": {comment}" if comment else "")
    if why:
        return f"Resolved after {lasted}: {why}"
    if rule is None:
        return f"Resolved after {lasted}"
    return f"Resolved after {lasted}: {reading(rule.figure, alert.value, alert.labels, rule.window)}"


def breach_of(rule: Rule, sample: Sample) -> Breach:
    labels = alert_labels(rule, sample)
    values = {
        **labels,
        "value": _number(sample.value),
        "threshold": _number(rule.threshold),
        "value_percent": _percent(sample.value),
        "threshold_percent": _percent(rule.threshold),
        "window": format_duration(rule.window),
        "detail": sample.detail,
    }
    annotations = {"summary": render(rule.summary, values), "value": _number(sample.value)}
    if rule.description:
        annotations["description"] = render(rule.description, values)
    if rule.runbook_url:
        annotations["runbook_url"] = rule.runbook_url
    return Breach(clean_strings(labels), clean_strings(annotations), sample.value)


class AlertEngine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        audit: AuditLog,
        outbox: Any,
        policy: AlertPolicy,
        rulebook: RuleBook,
        silences: Silences,
        inhibitions: Inhibitions,
        maintenance: Any,
        categories: Mapping[str, Callable[[TimeWindow], CategoryReport]],
        health_snapshot: Callable[[], Any] | None = None,
        memory_live_within: float = 50.0,
        external_url: str = "",
        wake_at: Callable[[float], object] | None = None,  # what it returns is not used
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit
        self.outbox = outbox
        self.policy = policy
        self.rulebook = rulebook
        self.silences = silences
        self.inhibitions = inhibitions
        self.maintenance = maintenance
        self.categories = categories
        self.health_snapshot = health_snapshot
        self.memory_live_within = memory_live_within
        self.ledger = AlertLedger(store)
        self.notifier = Notifier(outbox, self.ledger, external_url)
        # Asks for dispatch_due() at a moment (the scheduler's one-shot timer); None: the next
        # evaluation decides. ``leading``: whether this process runs the global jobs.
        self.wake_at = wake_at
        self.leading = leading

    def figure_reader(self, now: float) -> FigureReader:
        return FigureReader(self.store, self.clock, now, self.categories, self.health_snapshot,
                            self.memory_live_within)

    def timing_of(self, alert: Alert, rules: Mapping[str, Rule] | None = None) -> Timing:
        """The alert's timing: its severity's, with its rule's overrides (a manual alert: none)."""
        rule = (rules if rules is not None else {}).get(alert.rule) if alert.rule else None
        return self.policy.timing(alert.severity, rule.timing if rule is not None else None)

    def alert_json(self, alert: Alert, rules: Mapping[str, Rule] | None = None) -> dict[str, Any]:
        """The alert as the API shows it, with the repeat and escalation that apply to it."""
        if rules is None and alert.rule:
            rules = {rule.name: rule for rule in self.rulebook.rules()}
        timing = self.timing_of(alert, rules)
        return alert.to_json(timing.escalate_after, timing.repeat_interval)

    # --- the job ------------------------------------------------------------------------------

    def evaluate(self) -> EvaluationRun:
        now = self.clock.now()
        book = self.rulebook.read()
        rules = book.rules
        by_name = {rule.name: rule for rule in rules}
        reader = self.figure_reader(now)
        outcomes = {rule.name: self._evaluate_rule(rule, reader) for rule in rules if rule.enabled}
        # A stored rule that does not read is failing, like one whose figure cannot be read: its
        # alerts are left as they are and RuleEvaluationFailing names it.
        outcomes.update({name: RuleOutcome(error=error) for name, error in book.unreadable.items()})
        run = EvaluationRun(now, outcomes)
        outgoing = Outgoing()
        with self.store.write() as conn:
            open_alerts = self.ledger.open_alerts(conn)
            by_rule: dict[str, list[Alert]] = defaultdict(list)
            for alert in open_alerts:
                by_rule[alert.rule].append(alert)
            resolved: list[Alert] = []
            for rule in rules:
                outcome = outcomes.get(rule.name)
                if outcome is None:  # disabled: its alerts end
                    resolved += self._end(conn, by_rule.pop(rule.name, []), now, run, "rule disabled")
                elif not outcome.error:  # a figure we could not read says nothing: leave the alerts be
                    resolved += self._apply_isolated(conn, rule, outcome, by_rule.pop(rule.name, []), now, run)
                else:
                    by_rule.pop(rule.name, None)
            for name in [n for n in by_rule if n and n not in by_name]:  # the rule was deleted
                resolved += self._end(conn, by_rule.pop(name), now, run, "rule deleted")
            run.notifications += resolved_notifications(conn, resolved, now, self.notifier, outgoing)
            self._cancel_unsent(conn, resolved)
            run.dispatch = self._dispatch(conn, self.ledger.open_alerts(conn), now, outgoing, by_name)
            run.notifications += run.dispatch.notifications
            self._record_status(conn, outcomes, now)
        self._after_commit(outgoing, run.dispatch.next_due)
        if run.fired or run.resolved or run.notifications:
            log.info("alert evaluation: fired %s, resolved %s, %d notification(s)",
                     run.fired, run.resolved, len(run.notifications))
        return run

    def dispatch_due(self) -> DispatchRun:
        """Send what has fallen due since the last evaluation (a group wait ended, a repeat, an
        escalation), without reading any figure. Safe in any process and beside an evaluation:
        the open alerts are locked for the transaction and every notification id is stable."""
        now = self.clock.now()
        rules = {rule.name: rule for rule in self.rulebook.rules()}
        outgoing = Outgoing()
        with self.store.write() as conn:
            run = self._dispatch(conn, self.ledger.open_alerts(conn), now, outgoing, rules)
        self._after_commit(outgoing, run.next_due if self.leading() else None)
        return run

    def _after_commit(self, outgoing: Outgoing, next_due: float | None) -> None:
        """What a committed transaction asks for: its deliveries sent now, a dispatch when due."""
        if outgoing.delivery_keys:
            deliver_soon = getattr(self.outbox, "deliver_soon", None)
            if deliver_soon is not None:
                deliver_soon(outgoing.delivery_keys)
        if next_due is not None and self.wake_at is not None:
            try:
                self.wake_at(next_due)
            except Exception:  # the next evaluation sends it anyway
                log.exception("could not schedule the next alert dispatch")

    def _apply_isolated(self, conn: Connection, rule: Rule, outcome: RuleOutcome, current: list[Alert],
                        now: float, run: EvaluationRun) -> list[Alert]:
        """``_apply`` in a savepoint: a rule whose alert cannot be stored (or rendered) rolls back its
        own changes only, is marked failing, and the other rules' changes still commit."""
        fired, opened, notifications = list(run.fired), list(run.opened), list(run.notifications)
        try:
            with conn.begin_nested():
                return self._apply(conn, rule, outcome, current, now, run)
        except Exception as exc:
            log.warning("alert rule %s could not be applied: %s", rule.name, type(exc).__name__)
            outcome.error = sanitise_text(f"{type(exc).__name__}: {exc}")[:500]
            run.fired[:], run.opened[:], run.notifications[:] = fired, opened, notifications
            return []

    def _evaluate_rule(self, rule: Rule, reader: FigureReader) -> RuleOutcome:
        """Read the rule's figure and render its breaches; any failure is this rule's alone."""
        try:
            return self._read_rule(rule, reader)
        except Exception as exc:  # one rule's figure or template failing must not stop the others
            log.warning("alert rule %s: cannot be evaluated: %s", rule.name, type(exc).__name__)
            return RuleOutcome(error=sanitise_text(f"{type(exc).__name__}: {exc}")[:500])

    def _read_rule(self, rule: Rule, reader: FigureReader) -> RuleOutcome:
        samples = [s for s in reader.samples(rule.figure, rule.window, rule.service) if matches_all(rule.match, s.labels)]
        outcome = RuleOutcome(samples=len(samples))
        for sample in samples:
            if not math.isfinite(sample.value):
                continue
            if rule.breaches(sample.value):
                breach = breach_of(rule, sample)
                outcome.breaches[fingerprint(rule.name, breach.labels)] = breach
            else:
                outcome.observed[fingerprint(rule.name, clean_strings(alert_labels(rule, sample)))] = sample.value
        for fp, breach in outcome.breaches.items():
            outcome.observed[fp] = breach.value
        return outcome

    def _apply(self, conn: Connection, rule: Rule, outcome: RuleOutcome, current: list[Alert], now: float,
               run: EvaluationRun) -> list[Alert]:
        """Move the rule's alerts through their lifecycle; returns those that resolved."""
        existing = {alert.fingerprint: alert for alert in current}
        for fp, breach in outcome.breaches.items():
            alert = existing.pop(fp, None)
            if alert is None:
                alert = self._open(conn, rule, fp, breach, now, run)
                if alert is None:
                    continue
            else:
                alert.value, alert.last_active_at = breach.value, now
                alert.labels, alert.annotations = breach.labels, breach.annotations
                alert.severity = rule.severity
                alert.group_key = group_key(breach.labels, rule.group_by)
                if alert.cleared_at is not None:  # the condition is back before keep_firing_for ran out
                    self.ledger.event(conn, alert, "breaching", now, value=breach.value)
                    alert.cleared_at = None
            if alert.state == PENDING and now - alert.active_at >= rule.for_seconds:
                self._fire(conn, alert, now, run, self.policy.timing(rule.severity, rule.timing))
            alert.updated_at = now
            self.ledger.save(conn, alert)
        resolved = []
        for fp, alert in existing.items():  # no longer breaching
            if alert.state == PENDING:
                self.ledger.drop(conn, alert)
                run.dropped.append(alert.fingerprint)
                continue
            # The latest value, never the breach's: what a notice (or the API) shows is true now.
            alert.value = outcome.observed.get(fp)
            if alert.value is None:
                alert.annotations.pop("value", None)
            else:
                alert.annotations["value"] = _number(alert.value)
            if now - alert.last_active_at >= rule.keep_firing_for:
                resolved += self._end(conn, [alert], now, run, "", rule=rule)
                continue
            if alert.cleared_at is None:
                alert.cleared_at = now
                self.ledger.event(conn, alert, "cleared", now, value=alert.value)
                run.cleared.append(alert.fingerprint)
            alert.updated_at = now
            self.ledger.save(conn, alert)
        return resolved

    def _open(self, conn: Connection, rule: Rule, fp: str, breach: Breach, now: float,
              run: EvaluationRun) -> Alert | None:
        alert = self.ledger.insert(conn, Alert(
            fingerprint=fp, rule=rule.name, state=PENDING, severity=rule.severity, labels=breach.labels,
            annotations=breach.annotations, group_key=group_key(breach.labels, rule.group_by), active_at=now,
            last_active_at=now, updated_at=now, value=breach.value,
        ))
        if alert is None:  # another evaluator opened it in the meantime: it is handled there
            log.warning("alert %s was opened by another evaluation", fp)
            return None
        self.ledger.event(conn, alert, "pending", now, value=breach.value)
        run.opened.append(fp)
        return alert

    def _fire(self, conn: Connection, alert: Alert, now: float, run: EvaluationRun, timing: Timing,
              actor: str = "") -> None:
        alert.state, alert.fired_at = FIRING, now
        alert.notify_after = now + timing.group_wait
        self.ledger.event(conn, alert, "firing", now, actor, value=alert.value)
        run.fired.append(alert.fingerprint)

    def _end(self, conn: Connection, ending: list[Alert], now: float, run: EvaluationRun | None, why: str,
             actor: str = "", comment: str = "", rule: Rule | None = None) -> list[Alert]:
        """Resolve firing alerts (and drop pending ones); returns the resolved. Each carries its
        resolve sentence (annotation ``resolution``), which its resolve notice says."""
        resolved = []
        for alert in ending:
            if alert.state == PENDING and not actor:
                self.ledger.drop(conn, alert)
                continue
            alert.annotations = {**alert.annotations,
                                 RESOLUTION: sanitise_text(resolution(alert, now, rule, actor, comment, why))}
            alert.state, alert.resolved_at, alert.updated_at = RESOLVED, now, now
            alert.resolved_by, alert.resolve_comment = actor, comment
            self.ledger.save(conn, alert)
            self.ledger.event(conn, alert, "resolved", now, actor, **({"why": why} if why else {}),
                              **({"comment": comment} if comment else {}),
                              **({"value": alert.value} if alert.value is not None and not actor and not why else {}))
            resolved.append(alert)
            if run is not None:
                run.resolved.append(alert.fingerprint)
        return resolved

    def _cancel_unsent(self, conn: Connection, resolved: list[Alert]) -> None:
        """A firing or escalation delivery still waiting (a receiver that was down) for an alert now
        resolved would arrive after its resolve, or open a PagerDuty incident nothing closes: it
        is cancelled."""
        if resolved:
            cancel = getattr(self.outbox, "cancel_unsent", None)
            if cancel is not None:
                cancel(conn, {alert.fingerprint for alert in resolved})

    def _dispatch(self, conn: Connection, open_alerts: list[Alert], now: float, outgoing: Outgoing,
                  rules: Mapping[str, Rule]) -> DispatchRun:
        maintenance = self.maintenance.active(now) if self.maintenance is not None else []
        return dispatch(conn, open_alerts, now, lambda alert: self.timing_of(alert, rules), self.notifier,
                        self.silences.active(conn, now), maintenance, self.inhibitions.rules(conn), outgoing)

    def _record_status(self, conn: Connection, outcomes: Mapping[str, RuleOutcome], now: float) -> None:
        for name, outcome in outcomes.items():
            values = {"evaluated_at": now, "error": outcome.error, "samples": outcome.samples,
                      "breaching": len(outcome.breaches)}
            conn.execute(
                self.store.insert(alert_rule_status).values(name=name, **values)
                .on_conflict_do_update(index_elements=["name"], set_=values)
            )

    # --- admin actions ------------------------------------------------------------------------

    def trigger(self, severity: str, description: str, actor: Actor, *, service: str = "manual",
                summary: str = "", runbook_url: str = "") -> Triggered:
        """A manual alert, firing at once and sent like any other (grouping, routing, escalation):
        dispatched in its own transaction, so one with no group wait (critical) is enqueued and
        sent at once.

        The same description, severity and service while it is still open is the same alert:
        ``created`` is False and no second one is made.
        """
        if severity not in SEVERITIES:
            raise ValueError(severity)
        now = self.clock.now()
        description = sanitise_text(description.strip())
        labels = clean_strings({"alertname": MANUAL_ALERT, "severity": severity, "service": service})
        digest = hashlib.sha256(description.encode()).hexdigest()[:12]
        fp = fingerprint("", {**labels, "description": digest})
        annotations = {"summary": sanitise_text(summary.strip()) or description[:300], "description": description}
        if runbook_url:
            annotations["runbook_url"] = runbook_url
        outgoing = Outgoing()
        with self.store.write() as conn:
            existing = self.ledger.find_open(conn, fingerprint=fp)
            if existing is not None:
                return Triggered(existing, False, None)
            alert = self.ledger.insert(conn, Alert(
                fingerprint=fp, rule="", state=PENDING, severity=severity, labels=labels,
                annotations=clean_strings(annotations), group_key=group_key(labels, MANUAL_GROUP_BY), active_at=now,
                last_active_at=now, updated_at=now,
            ))
            if alert is None:
                raise AlertStateConflict("the same manual alert was triggered at the same moment")
            run = EvaluationRun(now, {})
            timing = self.policy.timing(severity)
            self._fire(conn, alert, now, run, timing, actor.who)
            self.ledger.save(conn, alert)
            self._audit(conn, "alerts.trigger", actor, alert, severity=severity, description=description)
            rules = {rule.name: rule for rule in self.rulebook.rules(conn)}
            self._dispatch(conn, self.ledger.open_alerts(conn), now, outgoing, rules)
            assert alert.id is not None  # the ledger inserted it
            alert = self.ledger.get(conn, alert.id) or alert  # as the dispatch left it
            sends_at = self._sends_at(conn, alert, timing, now)
        self._after_commit(outgoing, sends_at if sends_at is not None and sends_at > now else None)
        return Triggered(alert, True, sends_at)

    def _sends_at(self, conn: Connection, alert: Alert, timing: Timing, now: float) -> float | None:
        """When the alert is (or was) first sent: None while muted or when no channel carries it."""
        if alert.first_notified_at is not None:
            return alert.first_notified_at
        if alert.muted or not self.notifier.has_receiver(FIRING_EVENT, [alert]):
            return None
        group = by_group(a for a in self.ledger.open_alerts(conn) if a.state == FIRING).get(alert.group_key, [alert])
        return max(now, first_send_at(alert, group, timing))

    def acknowledge(self, actor: Actor, comment: str, *, alert_id: int | None = None,
                    fingerprint_: str | None = None) -> Alert:
        """Who, when, why: stops re-notification and escalation until the alert resolves; the
        receivers told about it hear who acknowledged it, and why."""
        now = self.clock.now()
        outgoing = Outgoing()
        with self.store.write() as conn:
            alert = self._open_alert(conn, alert_id, fingerprint_)
            if alert.state != FIRING:
                raise AlertStateConflict(f"alert {alert.id} is {alert.state}: only a firing alert can be acknowledged")
            if alert.acknowledged:
                raise AlertStateConflict(
                    f"alert {alert.id} was already acknowledged by {alert.acknowledged_by}")
            alert.acknowledged_at, alert.acknowledged_by = now, actor.who[:64]
            alert.ack_comment, alert.updated_at = sanitise_text(comment.strip()), now
            self.ledger.save(conn, alert)
            self.ledger.event(conn, alert, "acknowledged", now, actor.who, comment=alert.ack_comment)
            acknowledged_notification(conn, alert, now, self.notifier, outgoing, actor.who)
            self._audit(conn, "alerts.acknowledge", actor, alert, comment=alert.ack_comment)
        self._after_commit(outgoing, None)
        return alert

    def resolve(self, actor: Actor, comment: str, *, alert_id: int | None = None,
                fingerprint_: str | None = None) -> Alert:
        """End an open alert by hand (a rule's alert opens again if its condition still holds)."""
        now = self.clock.now()
        outgoing = Outgoing()
        with self.store.write() as conn:
            alert = self._open_alert(conn, alert_id, fingerprint_)
            (resolved,) = self._end(conn, [alert], now, None, "resolved by hand", actor.who,
                                    sanitise_text(comment.strip()))
            resolved_notifications(conn, [resolved], now, self.notifier, outgoing, actor.who)
            self._cancel_unsent(conn, [resolved])
            self._audit(conn, "alerts.resolve", actor, resolved, comment=resolved.resolve_comment)
        self._after_commit(outgoing, None)
        return resolved

    def _open_alert(self, conn: Connection, alert_id: int | None, fingerprint_: str | None) -> Alert:
        alert = self.ledger.find_open(conn, alert_id=alert_id, fingerprint=fingerprint_)
        if alert is not None:
            return alert
        if alert_id is not None and self.ledger.get(conn, alert_id) is not None:
            raise AlertStateConflict(f"alert {alert_id} is already resolved")
        raise AlertNotFound(alert_id if alert_id is not None else fingerprint_)

    def _audit(self, conn: Connection, action: str, actor: Actor, alert: Alert, **detail: Any) -> None:
        self.audit.record(ADMIN_ACTION, actor.who, action, client_ip=actor.client_ip, path=actor.path, conn=conn,
                          detail={"alert": alert.id, "fingerprint": alert.fingerprint, "name": alert.name, **detail})

    # --- reading --------------------------------------------------------------------------------

    def rule_status(self) -> dict[str, dict[str, Any]]:
        """The latest evaluation of every rule, and the state of its worst open alert."""
        with self.store.read() as conn:
            statuses = {row.name: row for row in conn.execute(select(alert_rule_status))}
            states = conn.execute(
                select(alerts.c.rule, alerts.c.state, func.count()).where(alerts.c.state.in_(OPEN_STATES))
                .group_by(alerts.c.rule, alerts.c.state)
            ).all()
        by_rule: dict[str, dict[str, int]] = defaultdict(dict)
        for rule, state, count in states:
            by_rule[rule][state] = int(count)
        status: dict[str, dict[str, Any]] = {}
        for name in set(statuses) | set(by_rule):
            row = statuses.get(name)
            counts = by_rule.get(name, {})
            status[name] = {
                "state": FIRING if counts.get(FIRING) else PENDING if counts.get(PENDING) else "inactive",
                "firing": counts.get(FIRING, 0),
                "pending": counts.get(PENDING, 0),
                "evaluatedAt": row.evaluated_at if row else None,
                "error": (row.error or None) if row else None,
                "samples": row.samples if row else None,
                "breaching": row.breaching if row else None,
            }
        return status
