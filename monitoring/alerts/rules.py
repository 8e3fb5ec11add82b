"""Alert rules: what a rule is, how one is validated, the five defaults, the rules derived
from the health checks in force, and the rule book (defaults and derived rules, overlaid by
the changes made through the API, which persist in the store and are audited with their
before and after).

Derived rules: for every health-checked dependency not already watched by DatabaseUnavailable,
``<Name>Unavailable`` (its check fails or its breaker is open: critical for a critical
dependency, else high), and for every dependency with a latency threshold ``<Name>Slow``
(mean response time of its answered checks over ALERT_DEPENDENCY_RESPONSE_TIME_WINDOW above
the threshold for a minute: medium). They follow the checks: a dependency configured later
(a HEALTH_CHECKS item, a registered custom check) has its rules at the next evaluation.

A rule reads one figure (``figures.py``) over its window, keeps the label sets its matchers
select, and compares each value with its threshold. A label set over the threshold for
``for`` seconds fires; a firing one stays firing ``keep_firing_for`` seconds after it stops
breaching, which damps flapping.

A rule may watch one service (``service``: the app whose requests and errors it reads, as
SERVICE_NAME or an ingested ``service.name`` names it): ``error_rate`` and ``api_p95_ms`` then
read that service's requests only, and an exported figure is read from the request and error
categories in that service's scope (figures of other categories have no sample). Without
``service`` (the default rules) a rule reads every service combined, as before services.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from monitoring.alerts.admin import Actor, InvalidRule
from monitoring.alerts.figures import (
    API_P95_MS,
    BUILTIN_FIGURES,
    DEPENDENCY_DOWN,
    DEPENDENCY_RESPONSE_TIME,
    ERROR_RATE,
    MEMORY_USAGE,
    PAYMENT_FAILURE_RATE,
    RULE_EVALUATION_FAILING,
    RULE_FAILURE_RULE,
    is_figure_name,
)
from monitoring.alerts.matchers import EQUAL, MATCHES, Matcher, parse_matchers
from monitoring.alerts.matchers import to_json as matchers_json
from monitoring.alerts.policy import NEVER, TIMING_FIELDS, parse_timing_value
from monitoring.clock import Clock
from monitoring.durations import DAY, MINUTE, format_duration, parse_duration
from monitoring.metrics.scope import MAX_SERVICE_CHARS, is_service_name
from monitoring.notify.model import SEVERITIES
from monitoring.security.audit import CONFIG_CHANGE, AuditLog
from monitoring.security.pii import sanitise_text
from monitoring.settings import AlertSettings
from monitoring.store.alerts_tables import alert_rules
from monitoring.store.database import Store

log = logging.getLogger(__name__)

DEFAULT = "default"
DERIVED = "derived"  # from a health check in force
CUSTOM = "custom"
MANUAL_ALERT = "ManualAlert"  # the alertname of alerts raised with action=trigger

COMPARISONS: dict[str, Any] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
LABEL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
RESERVED_LABELS = ("alertname", "severity")
MAX_LABELS = 20
MAX_GROUP_BY = 10
MAX_SUMMARY = 300
MAX_DESCRIPTION = 1000
MAX_URL = 500
MIN_WINDOW, MAX_WINDOW = MINUTE, 30 * DAY  # also the bounds of ALERT_*_WINDOW (monitoring/settings.py)
MAX_HOLD = DAY  # for / keep_firing_for
FIELDS = ("name", "figure", "service", "match", "comparison", "threshold", "window", "for", "keep_firing_for",
          "severity", "labels", "summary", "description", "runbook_url", "group_by", "timing", "enabled")
MAX_SERVICE = MAX_SERVICE_CHARS
# Built-in figures that are per service; the others (payments, memory, dependencies) are not.
SERVICE_FIGURES = (ERROR_RATE, API_P95_MS)
DEFAULT_WINDOW = 300.0
REQUIRED = ("name", "figure", "comparison", "threshold", "severity", "summary")


class RuleNotFound(LookupError):
    pass


class RuleExists(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    figure: str
    comparison: str
    threshold: float
    severity: str
    summary: str
    window: float = 300.0
    for_seconds: float = 0.0
    keep_firing_for: float = 0.0
    match: tuple[Matcher, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    runbook_url: str = ""
    group_by: tuple[str, ...] = ("service",)
    # The rule's own group_wait / group_interval / repeat_interval / escalate_after (seconds;
    # escalate_after None: never), laid over its severity's timing. Empty: the severity's.
    timing: Mapping[str, float | None] = field(default_factory=dict)
    enabled: bool = True
    service: str | None = None  # the one service whose requests and errors it reads; None: all combined
    origin: str = CUSTOM  # default (the environment), derived (a health check) or custom (the API)
    derived_from: str = ""  # derived rules: which check, and why this severity

    def breaches(self, value: float) -> bool:
        return bool(COMPARISONS[self.comparison](value, self.threshold))

    def to_json(self) -> dict[str, Any]:
        """The rule as the API shows it, and as it is stored: posting it back gives the same rule."""
        return {
            "name": self.name,
            "figure": self.figure,
            "service": self.service,
            "match": matchers_json(self.match),
            "comparison": self.comparison,
            "threshold": self.threshold,
            "window": format_duration(self.window),
            "for": format_duration(self.for_seconds),
            "keep_firing_for": format_duration(self.keep_firing_for),
            "severity": self.severity,
            "labels": dict(self.labels),
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
            "group_by": list(self.group_by),
            "timing": timing_json(self.timing),
            "enabled": self.enabled,
        }


def timing_json(timing: Mapping[str, float | None]) -> dict[str, str]:
    """A rule's timing overrides as written: durations, ``none`` for no escalation."""
    return {name: NEVER if timing[name] is None else format_duration(float(timing[name]))  # type: ignore[arg-type]
            for name in TIMING_FIELDS if name in timing}


def parse_timing(raw: Any) -> dict[str, float | None]:
    """A rule's ``timing``: an object of group_wait, group_interval, repeat_interval, escalate_after."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ValueError(f"must be an object of {', '.join(TIMING_FIELDS)} (durations; escalate_after may be none)")
    unknown = sorted(set(raw) - set(TIMING_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0][:40]} is not a timing; timings: {', '.join(TIMING_FIELDS)}")
    timing: dict[str, float | None] = {}
    for name in TIMING_FIELDS:
        if name in raw:
            try:
                timing[name] = parse_timing_value(name, raw[name])
            except ValueError as exc:
                raise ValueError(f"{name}: {str(exc).replace('expected', 'must be', 1)}") from None
    return timing


def parse_rule(data: Any, origin: str = CUSTOM, default_windows: Mapping[str, float] | None = None) -> Rule:
    """A complete rule from JSON; InvalidRule lists every bad field. A rule without ``window``
    takes its figure's default window (ALERT_*_WINDOW), else 5m."""
    problems: list[dict[str, str]] = []

    def problem(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    if not isinstance(data, dict):
        raise InvalidRule([{"field": "rule", "message": "must be a JSON object"}])
    for unknown in sorted(set(data) - set(FIELDS), key=str):
        problem(str(unknown)[:40], f"is not a field of a rule; fields: {', '.join(FIELDS)}")
    for required in REQUIRED:
        if data.get(required) is None:
            problem(required, "is required")
    values: dict[str, Any] = {"origin": origin}

    name = data.get("name")
    if name is not None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problem("name", "must be 1 to 64 letters, digits or '_', starting with a letter")
        elif name == MANUAL_ALERT:
            problem("name", f"{MANUAL_ALERT} is reserved for manual alerts")
        else:
            values["name"] = name
    figure = data.get("figure")
    if figure is not None:
        if not isinstance(figure, str) or not is_figure_name(figure):
            problem("figure", f"must be a built-in figure ({', '.join(BUILTIN_FIGURES)}) or an exported figure's "
                              "dotted name such as api.response_time.p99")
        else:
            values["figure"] = figure
    service = data.get("service")
    if service is not None:
        if not isinstance(service, str) or not is_service_name(service):
            problem("service", f"must be a service name of 1 to {MAX_SERVICE} printable characters, or null for "
                               "every service")
        elif isinstance(figure, str) and figure in BUILTIN_FIGURES and figure not in SERVICE_FIGURES:
            problem("service", f"{figure} is not per service; service applies to {', '.join(SERVICE_FIGURES)} "
                               "and to exported request and error figures")
        else:
            values["service"] = service
    comparison = data.get("comparison")
    if comparison is not None:
        if not isinstance(comparison, str) or comparison not in COMPARISONS:
            problem("comparison", f"must be one of: {', '.join(COMPARISONS)}")
        else:
            values["comparison"] = comparison
    threshold = data.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            problem("threshold", "must be a number")
        else:
            values["threshold"] = float(threshold)
    severity = data.get("severity")
    if severity is not None:
        if not isinstance(severity, str) or severity not in SEVERITIES:
            problem("severity", f"must be one of: {', '.join(SEVERITIES)}")
        else:
            values["severity"] = severity
    if data.get("window") is None and isinstance(values.get("figure"), str):
        values["window"] = (default_windows or {}).get(values["figure"], DEFAULT_WINDOW)
    for key, attr, low, high in (("window", "window", MIN_WINDOW, MAX_WINDOW), ("for", "for_seconds", 0.0, MAX_HOLD),
                                 ("keep_firing_for", "keep_firing_for", 0.0, MAX_HOLD)):
        if data.get(key) is not None:
            try:
                values[attr] = parse_duration(data[key], low, high)
            except ValueError as exc:
                problem(key, str(exc).replace("expected", "must be", 1))
    try:
        values["match"] = parse_matchers(data.get("match"))
    except ValueError as exc:
        problem("match", str(exc))
    labels = data.get("labels", {})
    if (
        not isinstance(labels, dict)
        or len(labels) > MAX_LABELS
        or not all(isinstance(k, str) and LABEL_NAME.fullmatch(k) and k not in RESERVED_LABELS for k in labels)
        or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in labels.values())
    ):
        problem("labels", f"must be an object of up to {MAX_LABELS} labels (names a-z, 0-9, '_'; not alertname or "
                          "severity) to text of 1 to 200 characters")
    else:
        values["labels"] = {k: sanitise_text(v) for k, v in labels.items()}
    for key, limit in (("summary", MAX_SUMMARY), ("description", MAX_DESCRIPTION)):
        text = data.get(key, "" if key == "description" else None)
        if text is None:
            continue
        if not isinstance(text, str) or len(text) > limit or (key == "summary" and not text.strip()):
            problem(key, f"must be text of {'1' if key == 'summary' else '0'} to {limit} characters")
        else:
            values[key] = sanitise_text(text.strip())
    runbook = data.get("runbook_url", "")
    if not isinstance(runbook, str) or len(runbook) > MAX_URL or (runbook and not runbook.startswith(("http://", "https://"))):
        problem("runbook_url", f"must be an http:// or https:// URL of at most {MAX_URL} characters, or empty")
    else:
        values["runbook_url"] = runbook
    group_by = data.get("group_by", ["service"])
    if (
        not isinstance(group_by, list)
        or len(group_by) > MAX_GROUP_BY
        or not all(isinstance(g, str) and (LABEL_NAME.fullmatch(g) or g in RESERVED_LABELS) for g in group_by)
    ):
        problem("group_by", f"must be a list of up to {MAX_GROUP_BY} label names")
    else:
        values["group_by"] = tuple(dict.fromkeys(group_by))
    try:
        values["timing"] = parse_timing(data.get("timing"))
    except ValueError as exc:
        problem("timing", str(exc))
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        problem("enabled", "must be true or false")
    else:
        values["enabled"] = enabled
    if problems:
        raise InvalidRule(problems)
    return Rule(**values)


def update_rule_json(current: Rule, changes: Mapping[str, Any]) -> Rule:
    """``current`` with ``changes`` laid over it, validated as a whole rule."""
    if "name" in changes and changes["name"] != current.name:
        raise InvalidRule([{"field": "name", "message": "a rule cannot be renamed; add a new rule instead"}])
    return replace(parse_rule({**current.to_json(), **changes}, origin=current.origin),
                   derived_from=current.derived_from)


# --- the defaults ---------------------------------------------------------------------------------


def default_windows(settings: AlertSettings) -> dict[str, float]:
    """Each built-in figure's default window (ALERT_*_WINDOW)."""
    return {
        PAYMENT_FAILURE_RATE: settings.alert_payment_failure_rate_window,
        ERROR_RATE: settings.alert_error_rate_window,
        API_P95_MS: settings.alert_api_p95_window,
        MEMORY_USAGE: settings.alert_memory_usage_window,
        DEPENDENCY_RESPONSE_TIME: settings.alert_dependency_response_time_window,
    }


def default_rules(settings: AlertSettings) -> list[Rule]:
    """The five rules of the system description (thresholds and windows from the environment), and
    RuleEvaluationFailing, which watches the others."""
    database_checks = "|".join(re.escape(name) for name in settings.alert_database_checks)
    windows = default_windows(settings)
    return [
        Rule(
            name="PaymentFailures", figure=PAYMENT_FAILURE_RATE, comparison=">",
            threshold=settings.payment_failure_threshold, severity="critical",
            summary="Payment failure rate {value_percent} > {threshold_percent} over {window}",
            description="Failed payments as a share of all payments recorded in the window.",
            window=windows[PAYMENT_FAILURE_RATE], for_seconds=0.0, keep_firing_for=300.0,
            labels={"service": "payments", "category": "business"}, origin=DEFAULT,
        ),
        Rule(
            name="HighErrorRate", figure=ERROR_RATE, comparison=">", threshold=settings.error_rate_threshold,
            severity="high", summary="Error rate {value_percent} of requests > {threshold_percent} over {window}",
            description="5xx responses as a share of the monitored app's requests (monitoring endpoints left out).",
            window=windows[ERROR_RATE], labels={"service": "api", "category": "performance"}, origin=DEFAULT,
        ),
        Rule(
            name="SlowApiResponse", figure=API_P95_MS, comparison=">", threshold=settings.api_response_threshold_ms,
            severity="medium", summary="API p95 response time {value} ms > {threshold} ms over {window}",
            description="95th percentile response time of the monitored app's requests (monitoring endpoints left out).",
            window=windows[API_P95_MS], for_seconds=180.0, labels={"service": "api", "category": "performance"},
            origin=DEFAULT,
        ),
        Rule(
            name="DatabaseUnavailable", figure=DEPENDENCY_DOWN, comparison=">", threshold=0.0, severity="critical",
            summary="{service} is unavailable: {detail}",
            description="The database health check fails, or its circuit breaker is open.",
            window=300.0, match=(Matcher("service", MATCHES, database_checks),), labels={"category": "health"},
            origin=DEFAULT,
        ),
        Rule(
            name="HighMemoryUsage", figure=MEMORY_USAGE, comparison=">", threshold=settings.memory_usage_threshold,
            severity="medium", summary="Memory usage {value}% > {threshold}% on {host}",
            description="Memory in use over the limit that applies (the container's, else the host's).",
            window=windows[MEMORY_USAGE], for_seconds=600.0, labels={"service": "system", "category": "system"},
            origin=DEFAULT,
        ),
        Rule(
            name=RULE_FAILURE_RULE, figure=RULE_EVALUATION_FAILING, comparison=">", threshold=0.0,
            severity="high", summary="Alert rule {rule} cannot be evaluated: {detail}",
            description="A rule whose figure cannot be read, or whose alert cannot be rendered or stored, watches "
                        "nothing: the other rules go on, and this says which one is blind.",
            window=60.0, labels={"service": "centinela", "category": "alerting"}, group_by=("rule",),
            origin=DEFAULT,
        ),
    ]


class CheckInForce(Protocol):
    """What a derived rule needs of a health check (monitoring.health.checks.Check has it).

    Read-only properties, so that a frozen dataclass such as Check matches.
    """

    @property
    def name(self) -> str: ...

    @property
    def critical(self) -> bool: ...

    @property
    def latency_threshold_ms(self) -> float | None: ...


SLOW_FOR = 60.0  # the window mean must stay over the threshold this long: slow for a few minutes
_NAME_PART = re.compile(r"[a-z0-9]+")


def rule_stem(check_name: str) -> str:
    """``orders-db`` → ``OrdersDb``: a check name as the start of a rule name."""
    stem = "".join(part.capitalize() for part in _NAME_PART.findall(check_name.lower()))[:48]
    return stem if stem[:1].isalpha() else f"Dependency{stem}"


def derived_rules(checks: Iterable[CheckInForce], settings: AlertSettings) -> list[Rule]:
    """One down rule per dependency (critical or high, by the check), one slow rule per
    dependency with a latency threshold (medium); DatabaseUnavailable's checks have their down
    rule already."""
    watched = set(settings.alert_database_checks)
    rules: list[Rule] = []
    taken: set[str] = set()
    for check in checks:
        stem = rule_stem(check.name)
        if stem in taken:  # two names that differ only in punctuation: the first keeps the rules
            continue
        taken.add(stem)
        match = (Matcher("service", EQUAL, check.name),)
        kind = "critical" if check.critical else "non-critical"
        if check.name not in watched:
            rules.append(Rule(
                name=f"{stem}Unavailable", figure=DEPENDENCY_DOWN, comparison=">", threshold=0.0,
                severity="critical" if check.critical else "high",
                summary="{service} is unavailable: {detail}",
                description=f"The {check.name} health check fails, or its circuit breaker is open.",
                window=300.0, match=match, labels={"category": "health"}, origin=DERIVED,
                derived_from=f"health check {check.name} ({kind}): down is "
                             f"{'critical' if check.critical else 'high'}",
            ))
        if check.latency_threshold_ms is not None:
            rules.append(Rule(
                name=f"{stem}Slow", figure=DEPENDENCY_RESPONSE_TIME, comparison=">",
                threshold=float(check.latency_threshold_ms), severity="medium",
                summary="{service} answers slowly: {value} ms on average > {threshold} ms over {window}",
                description=f"Mean response time of the {check.name} checks that answered, over the window, above "
                            "its latency threshold.",
                window=settings.alert_dependency_response_time_window, for_seconds=SLOW_FOR, match=match,
                labels={"category": "health"}, origin=DERIVED,
                derived_from=f"health check {check.name} ({kind}): latency threshold "
                             f"{check.latency_threshold_ms:g} ms",
            ))
    return rules


# --- the rule book ----------------------------------------------------------------------------------


@dataclass
class RuleSet:
    """What the rule book holds at one read: the rules, and the stored ones that do not read (name: error)."""

    rules: list[Rule] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)


class RuleBook:
    """The rules in force: the defaults and the derived rules, overlaid by the changes stored
    through the API, then the rules added through it."""

    def __init__(self, store: Store, clock: Clock, audit: AuditLog, defaults: Iterable[Rule],
                 derived: Callable[[], Iterable[Rule]] | None = None,
                 windows: Mapping[str, float] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit
        self._defaults = {rule.name: rule for rule in defaults}
        self._derived = derived
        self.windows = dict(windows or {})

    @classmethod
    def from_settings(cls, store: Store, clock: Clock, audit: AuditLog, settings: AlertSettings,
                      checks: Callable[[], Iterable[CheckInForce]] | None = None) -> RuleBook:
        """The defaults and windows from the alerts settings; derived rules from ``checks`` (the health
        checks in force, read at each evaluation so that a check added later has its rules)."""
        derived = (lambda: derived_rules(checks(), settings)) if checks is not None else None
        return cls(store, clock, audit, default_rules(settings), derived, default_windows(settings))

    @property
    def defaults(self) -> dict[str, Rule]:
        """The rules that exist without the API: the five defaults, then the derived ones."""
        found = dict(self._defaults)
        for rule in self._derived() if self._derived is not None else ():
            found.setdefault(rule.name, rule)
        return found

    def rules(self, conn: Connection | None = None) -> list[Rule]:
        """Defaults first (in their order), derived rules, then added rules by name."""
        return self.read(conn).rules

    def read(self, conn: Connection | None = None) -> RuleSet:
        """The rules, and the stored ones that no longer read as a rule (a row written by an older
        version, or edited by hand): those are left out, so they stop no other rule, and named with
        their error, so the evaluation reports them failing (RuleEvaluationFailing)."""
        if conn is None:
            with self.store.read() as read_conn:
                return self.read(read_conn)
        stored = {row.name: row.definition for row in conn.execute(select(alert_rules.c.name, alert_rules.c.definition))}
        found = RuleSet()
        for name, default in self.defaults.items():
            if name not in stored:
                found.rules.append(default)
            else:
                self._add_stored(found, name, stored.pop(name), default)
        for name in sorted(stored):
            self._add_stored(found, name, stored[name], None)
        return found

    def _add_stored(self, found: RuleSet, name: str, definition: Any, default: Rule | None) -> None:
        try:
            found.rules.append(self._stored_rule(definition, default))
        except (InvalidRule, ValueError, TypeError, KeyError) as exc:
            log.warning("stored alert rule %s does not read as a rule: %s", name, type(exc).__name__)
            found.unreadable[name] = sanitise_text(f"the stored rule does not read as a rule: {exc}")[:500]

    def get(self, name: str, conn: Connection | None = None) -> Rule:
        for rule in self.rules(conn):
            if rule.name == name:
                return rule
        raise RuleNotFound(name)

    @staticmethod
    def _stored_rule(definition: Any, default: Rule | None) -> Rule:
        """A stored change of ``default`` (keeping where that came from), or an added rule."""
        origin = default.origin if default is not None else CUSTOM
        derived_from = default.derived_from if default is not None else ""
        return replace(parse_rule(definition, origin=origin), origin=origin, derived_from=derived_from)

    def add(self, data: Any, actor: Actor) -> Rule:
        rule = parse_rule(data, origin=CUSTOM, default_windows=self.windows)
        with self.store.write() as conn:
            if any(r.name == rule.name for r in self.rules(conn)):
                raise RuleExists(rule.name)
            self._save(conn, rule, actor)
            self._audit(conn, "alerts.add_rule", actor, None, rule)
        return rule

    def update(self, name: str, changes: Mapping[str, Any], actor: Actor) -> tuple[Rule, Rule]:
        """Apply ``changes`` to the rule ``name``; returns (before, after)."""
        with self.store.write() as conn:
            before = self.get(name, conn)
            after = update_rule_json(before, changes)
            self._save(conn, after, actor)
            self._audit(conn, "alerts.update_rule", actor, before, after)
        return before, after

    def remove(self, name: str, actor: Actor) -> tuple[Rule, Rule | None]:
        """Delete an added rule, or put a default rule back to its environment default; (before, after)."""
        with self.store.write() as conn:
            before = self.get(name, conn)
            conn.execute(delete(alert_rules).where(alert_rules.c.name == name))
            after = self.defaults.get(name)
            self._audit(conn, "alerts.delete_rule", actor, before, after)
        return before, after

    def _save(self, conn: Connection, rule: Rule, actor: Actor) -> None:
        now = self.clock.now()
        definition = rule.to_json()
        conn.execute(
            self.store.insert(alert_rules)
            .values(name=rule.name, definition=definition, created_at=now, updated_at=now, updated_by=actor.who)
            .on_conflict_do_update(index_elements=["name"],
                                   set_={"definition": definition, "updated_at": now, "updated_by": actor.who})
        )

    def _audit(self, conn: Connection, action: str, actor: Actor, before: Rule | None, after: Rule | None) -> None:
        name = after.name if after is not None else before.name if before is not None else ""
        self.audit.record(
            CONFIG_CHANGE, actor.who, action, client_ip=actor.client_ip, path=actor.path, conn=conn,
            detail={"rule": name, "before": before.to_json() if before else None,
                    "after": after.to_json() if after else None},
        )
