"""The alerting engine: the leader's evaluation job, and the admin actions on alerts.

``evaluate()`` (every ALERT_EVALUATION_INTERVAL, in the lease holder only):

1. reads each enabled rule's figure over its window (outside any write transaction);
2. in ONE write transaction: locks the open alerts, moves each through its lifecycle
   (pending, firing, resolved), enqueues the resolved notifications, then dispatches
   (muting, grouping, repeats, escalation) and enqueues what that decides. A failure
   anywhere rolls back the state changes and their notifications together.

The actions (``trigger``, ``acknowledge``, ``resolve``) run in the answering worker, each in
its own transaction with its audit entry and the notification it causes.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from monitoring.alerts.admin import Actor
from monitoring.alerts.dispatch import DispatchRun, Notifier, acknowledged_notification, dispatch, \
    resolved_notifications
from monitoring.alerts.figures import FigureReader, Sample
from monitoring.alerts.inhibition import Inhibitions
from monitoring.alerts.lifecycle import FIRING, OPEN_STATES, PENDING, RESOLVED, Alert, AlertLedger, clean_strings, \
    fingerprint, group_key
from monitoring.alerts.matchers import matches_all
from monitoring.alerts.policy import AlertPolicy, format_duration
from monitoring.alerts.rules import MANUAL_ALERT, Rule, RuleBook
from monitoring.alerts.silences import Silences
from monitoring.clock import Clock
from monitoring.errors.sanitiser import sanitise_text
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.notify.model import SEVERITIES, Notification
from monitoring.security.audit import ADMIN_ACTION, AuditLog
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
    notifications: list[Notification] = field(default_factory=list)
    dispatch: DispatchRun | None = None

    def count(self, event: str) -> int:
        return sum(1 for n in self.notifications if n.event == event)


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e15 else f"{value:.3e}"


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def render(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders filled from ``values``; unknown names become empty (never format() on input)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def breach_of(rule: Rule, sample: Sample) -> Breach:
    labels = {**sample.labels, **rule.labels, "alertname": rule.name, "severity": rule.severity}
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

    def figure_reader(self, now: float) -> FigureReader:
        return FigureReader(self.store, self.clock, now, self.categories, self.health_snapshot,
                            self.memory_live_within)

    # --- the job ------------------------------------------------------------------------------

    def evaluate(self) -> EvaluationRun:
        now = self.clock.now()
        rules = self.rulebook.rules()
        reader = self.figure_reader(now)
        outcomes = {rule.name: self._evaluate_rule(rule, reader) for rule in rules if rule.enabled}
        run = EvaluationRun(now, outcomes)
        with self.store.write() as conn:
            open_alerts = self.ledger.open_alerts(conn)
            by_rule: dict[str, list[Alert]] = defaultdict(list)
            for alert in open_alerts:
                by_rule[alert.rule].append(alert)
            resolved: list[Alert] = []
            known = {rule.name for rule in rules}
            for rule in rules:
                outcome = outcomes.get(rule.name)
                if outcome is None:  # disabled: its alerts end
                    resolved += self._end(conn, by_rule.pop(rule.name, []), now, run, "rule disabled")
                elif not outcome.error:  # a figure we could not read says nothing: leave the alerts be
                    resolved += self._apply(conn, rule, outcome, by_rule.pop(rule.name, []), now, run)
                else:
                    by_rule.pop(rule.name, None)
            for name in [n for n in by_rule if n and n not in known]:  # the rule was deleted
                resolved += self._end(conn, by_rule.pop(name), now, run, "rule deleted")
            run.notifications += resolved_notifications(conn, resolved, now, self.notifier)
            still_open = self.ledger.open_alerts(conn)
            run.dispatch = self._dispatch(conn, still_open, now)
            run.notifications += run.dispatch.notifications
            self._record_status(conn, outcomes, now)
        if run.fired or run.resolved or run.notifications:
            log.info("alert evaluation: fired %s, resolved %s, %d notification(s)",
                     run.fired, run.resolved, len(run.notifications))
        return run

    def _evaluate_rule(self, rule: Rule, reader: FigureReader) -> RuleOutcome:
        try:
            samples = [s for s in reader.samples(rule.figure, rule.window) if matches_all(rule.match, s.labels)]
        except Exception as exc:  # one rule's figure failing must not stop the others
            log.warning("alert rule %s: figure %s unavailable: %s", rule.name, rule.figure, exc)
            return RuleOutcome(error=sanitise_text(f"{type(exc).__name__}: {exc}")[:500])
        outcome = RuleOutcome(samples=len(samples))
        for sample in samples:
            if math.isfinite(sample.value) and rule.breaches(sample.value):
                breach = breach_of(rule, sample)
                outcome.breaches[fingerprint(rule.name, breach.labels)] = breach
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
            if alert.state == PENDING and now - alert.active_at >= rule.for_seconds:
                self._fire(conn, alert, now, run)
            alert.updated_at = now
            self.ledger.save(conn, alert)
        resolved = []
        for alert in existing.values():  # no longer breaching
            if alert.state == PENDING:
                self.ledger.drop(conn, alert)
                run.dropped.append(alert.fingerprint)
            elif now - alert.last_active_at >= rule.keep_firing_for:
                resolved += self._end(conn, [alert], now, run, "")
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

    def _fire(self, conn: Connection, alert: Alert, now: float, run: EvaluationRun, actor: str = "") -> None:
        alert.state, alert.fired_at = FIRING, now
        alert.notify_after = now + self.policy.group_wait
        self.ledger.event(conn, alert, "firing", now, actor, value=alert.value)
        run.fired.append(alert.fingerprint)

    def _end(self, conn: Connection, ending: list[Alert], now: float, run: EvaluationRun | None, why: str,
             actor: str = "", comment: str = "") -> list[Alert]:
        """Resolve firing alerts (and drop pending ones); returns the resolved."""
        resolved = []
        for alert in ending:
            if alert.state == PENDING and not actor:
                self.ledger.drop(conn, alert)
                continue
            alert.state, alert.resolved_at, alert.updated_at = RESOLVED, now, now
            alert.resolved_by, alert.resolve_comment = actor, comment
            self.ledger.save(conn, alert)
            self.ledger.event(conn, alert, "resolved", now, actor, **({"why": why} if why else {}),
                              **({"comment": comment} if comment else {}))
            resolved.append(alert)
            if run is not None:
                run.resolved.append(alert.fingerprint)
        return resolved

    def _dispatch(self, conn: Connection, open_alerts: list[Alert], now: float) -> DispatchRun:
        maintenance = self.maintenance.active(now) if self.maintenance is not None else []
        return dispatch(conn, open_alerts, now, self.policy, self.notifier, self.silences.active(conn, now),
                        maintenance, self.inhibitions.rules(conn))

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
                summary: str = "", runbook_url: str = "") -> tuple[Alert, bool]:
        """A manual alert, firing at once and sent like any other (grouping, routing, escalation).

        The same description, severity and service while it is still open is the same alert:
        returns (alert, False) without a second one.
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
        with self.store.write() as conn:
            existing = self.ledger.find_open(conn, fingerprint=fp)
            if existing is not None:
                return existing, False
            alert = self.ledger.insert(conn, Alert(
                fingerprint=fp, rule="", state=PENDING, severity=severity, labels=labels,
                annotations=clean_strings(annotations), group_key=group_key(labels, MANUAL_GROUP_BY), active_at=now,
                last_active_at=now, updated_at=now,
            ))
            if alert is None:
                raise AlertStateConflict("the same manual alert was triggered at the same moment")
            run = EvaluationRun(now, {})
            self._fire(conn, alert, now, run, actor.who)
            self.ledger.save(conn, alert)
            self._audit(conn, "alerts.trigger", actor, alert, severity=severity, description=description)
        return alert, True

    def acknowledge(self, actor: Actor, comment: str, *, alert_id: int | None = None,
                    fingerprint_: str | None = None) -> Alert:
        """Who, when, why: stops re-notification and escalation until the alert resolves."""
        now = self.clock.now()
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
            acknowledged_notification(conn, alert, now, self.notifier, actor.who)
            self._audit(conn, "alerts.acknowledge", actor, alert, comment=alert.ack_comment)
        return alert

    def resolve(self, actor: Actor, comment: str, *, alert_id: int | None = None,
                fingerprint_: str | None = None) -> Alert:
        """End an open alert by hand (a rule's alert opens again if its condition still holds)."""
        now = self.clock.now()
        with self.store.write() as conn:
            alert = self._open_alert(conn, alert_id, fingerprint_)
            (resolved,) = self._end(conn, [alert], now, None, "resolved by hand", actor.who,
                                    sanitise_text(comment.strip()))
            resolved_notifications(conn, [resolved], now, self.notifier, actor.who)
            self._audit(conn, "alerts.resolve", actor, resolved, comment=resolved.resolve_comment)
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
