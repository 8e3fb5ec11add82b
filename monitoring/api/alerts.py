"""/api/monitoring/alerts: one endpoint, many actions (``?action=`` on GET, ``"action"`` in
the POST body). Each action is one entry in GET_VIEWS / POST_ACTIONS: the key it needs, its
model (the query parameters or the body fields it takes, validated before it runs) and its
handler. The document shows the POST body as a union discriminated by ``action``; the
configuration view is assembled from CONFIGURATION_SECTIONS.

Views (GET): active, history, rules, silences, maintenance, configuration (read key);
deliveries (admin key). Actions (POST, admin key, audited): trigger, acknowledge, resolve,
silence, expire_silence, maintenance, delete_maintenance, add_rule, update_rule, delete_rule,
update_inhibitions, test. The logic lives in monitoring.alerts and monitoring.notify; the
silence, window, rule and inhibition fields are checked there (they are read from settings
too), and their bad input answers with the problems of each field.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from flask import Response, g, jsonify, request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema, model_validator

from monitoring.alerts.admin import Actor
from monitoring.alerts.engine import AlertEngine, AlertNotFound, AlertStateConflict
from monitoring.alerts.figures import BUILTIN_FIGURES
from monitoring.alerts.lifecycle import FIRING, PENDING, STATES, Alert
from monitoring.alerts.matchers import matches_all
from monitoring.alerts.rules import Rule, RuleExists, RuleNotFound
from monitoring.alerts.silences import STATES as SILENCE_STATES
from monitoring.alerts.silences import SilenceExpired, SilenceNotFound, parse_silence
from monitoring.api.auth import check_key, client_ip
from monitoring.api.contract import (
    Document,
    ErrorBody,
    Model,
    Moment,
    QueryModel,
    Required,
    Timestamp,
    choice,
    endpoint,
    text_of,
    tidy_schema,
)
from monitoring.api.errors import ApiError
from monitoring.api.paging import MAX_ID, Before, NextPage, next_page, page_size
from monitoring.clock import isoformat
from monitoring.durations import DAY, parse_duration
from monitoring.extension import Monitoring, current_monitoring
from monitoring.notify.channel import CHANNEL_NAMES, CHANNEL_NAMES_SHOWN, is_channel_name
from monitoring.notify.model import SEVERITIES
from monitoring.notify.outbox import STATUSES, Outbox
from monitoring.notify.probe import probe_channels
from monitoring.security.audit import ADMIN_ACTION
from monitoring.security.keys import ADMIN, METRICS
from monitoring.uptime.maintenance import parse_window_spec

MAX_PAGE = 500
UPCOMING_MAINTENANCE = 7 * DAY
MAX_COMMENT = 500
MAX_DESCRIPTION = 1000
_SERVICE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


# --- field types ------------------------------------------------------------------------------


def _fingerprint(value: Any) -> Any:
    if value == "":
        return None  # ?fingerprint= is no filter
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise ValueError("must be 16 hexadecimal digits")
    return value


Fingerprint = Annotated[str | None, BeforeValidator(_fingerprint),
                        WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{16}$"})]


def _positive_id(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError("must be a whole number from 1")
    return value


PositiveId = Annotated[int, BeforeValidator(_positive_id), WithJsonSchema(
    {"type": "integer", "minimum": 1, "maximum": MAX_ID})]


def _channel(value: Any) -> Any:
    if value == "":
        return None
    if not is_channel_name(value):
        raise ValueError(f"must be one of: {CHANNEL_NAMES_SHOWN}")
    return value


# A fixed name, or one Apprise URL's channel (apprise-<name>).
ChannelName = Annotated[str | None, BeforeValidator(_channel), WithJsonSchema(
    {"type": "string", "pattern": "^(" + "|".join(CHANNEL_NAMES) + "|apprise-[a-z0-9][a-z0-9_-]{0,23})$"})]


def _service(value: Any) -> Any:
    if not isinstance(value, str) or not _SERVICE.fullmatch(value):
        raise ValueError("must be a name of 1 to 64 of a-z, 0-9, '-', '_'")
    return value


ServiceName = Annotated[str, BeforeValidator(_service), WithJsonSchema(
    {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"})]


def _http_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _naming(what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must name {what}")
        return value

    return check


def _an_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be an object (see action=rules for the fields)")
    return value


_MATCHERS_DESCRIPTION = 'Alertmanager-style matchers: service="api", route!="/x", alertname=~"A|B", host!~"c.*".'
_MATCHERS_SCHEMA = {"type": "array", "maxItems": 20, "items": {"type": "string"}, "description": _MATCHERS_DESCRIPTION}
_DURATION_SCHEMA = {"type": ["string", "number"]}
# Checked by monitoring.alerts (the same fields come from settings): the model only carries them.
Matchers = Annotated[Any, WithJsonSchema(_MATCHERS_SCHEMA)]
# --- the answers ------------------------------------------------------------------------------

Labels = dict[str, str]


class Acknowledgement(Document):
    by: str
    at: Timestamp
    comment: str


class AlertNotifications(Document):
    sent: int
    first_at: Timestamp | None = Field(alias="firstAt")
    last_at: Timestamp | None = Field(alias="lastAt")
    next_repeat_at: Timestamp | None = Field(alias="nextRepeatAt")


class AlertEscalation(Document):
    after_seconds: float | None = Field(alias="afterSeconds")
    due_at: Timestamp | None = Field(alias="dueAt")
    escalated_at: Timestamp | None = Field(alias="escalatedAt")


class AlertDocument(Document):
    id: int
    fingerprint: str = Field(description="Stable per rule and label set: 16 hex digits.")
    name: str
    rule: str | None = Field(description="null for a manual alert.")
    state: Literal["pending", "firing", "resolved"]
    severity: Literal["critical", "high", "medium", "low", "info"]
    summary: str
    resolution: str | None
    value: float | None
    labels: Labels
    annotations: dict[str, Any]
    group: Labels
    active_at: Timestamp = Field(alias="activeAt")
    fired_at: Timestamp | None = Field(alias="firedAt")
    cleared_at: Timestamp | None = Field(alias="clearedAt")
    resolved_at: Timestamp | None = Field(alias="resolvedAt")
    resolved_by: str | None = Field(alias="resolvedBy", description="evaluation, or the key id that resolved it.")
    resolve_comment: str | None = Field(alias="resolveComment")
    acknowledged: Acknowledgement | None
    muted: dict[str, Any] | None = Field(description="Why it is not sent: by silence (id), maintenance (id) or "
                                         "inhibition (source fingerprint), and since when.")
    notifications: AlertNotifications
    escalation: AlertEscalation


class AlertEvent(Document):
    at: Timestamp
    kind: str
    actor: str | None
    detail: dict[str, Any]


class AlertWithEvents(AlertDocument):
    events: list[AlertEvent] = Field(description="What happened to it, oldest first.")


class ActiveView(Document):
    alerts: list[AlertDocument]
    counts: dict[str, int]


class HistoryView(Document):
    alerts: list[AlertWithEvents]
    next: NextPage | None


class RuleSpec(Document):
    """A rule as stored: posting it back gives the same rule (add_rule needs name, figure,
    comparison, threshold, severity and summary; update_rule needs name and the fields to change)."""

    name: str = Field(pattern="^[A-Za-z][A-Za-z0-9_]{0,63}$")
    figure: str = Field(description="A built-in figure (" + ", ".join(BUILTIN_FIGURES) + ") or the dotted name of "
                        "any exported figure (its Datadog name).")
    service: str | None = Field(None, max_length=100, description="The one service whose requests and errors the "
                                "rule reads (error_rate, api_p95_ms, exported request and error figures); null: "
                                "every service combined.")
    match: list[str] = Field(max_length=20, description=_MATCHERS_DESCRIPTION)
    comparison: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    window: str = Field(description="1m to 30d, e.g. 5m.")
    for_: str = Field(alias="for", description="0 to 24h: how long it must hold before firing.")
    keep_firing_for: str = Field(description="0 to 24h: damps flapping.")
    severity: Literal["critical", "high", "medium", "low", "info"]
    labels: Labels
    summary: str = Field(max_length=300, description="{value}, {threshold}, {value_percent}, {threshold_percent}, "
                         "{window}, {detail} and {<label>} are filled in.")
    description: str = Field(max_length=1000)
    runbook_url: str
    group_by: list[str]
    timing: dict[str, str] = Field(description="The rule's own timing, laid over its severity's: group_wait, "
                                   "group_interval, repeat_interval, escalate_after (durations; escalate_after "
                                   "may be none).")
    enabled: bool


class RuleInForce(RuleSpec):
    origin: Literal["default", "derived", "custom"] = Field(
        description="default: one of the five built from the environment; derived: from a health check in force "
        "(derivedFrom says which); custom: added through the API.")
    derived_from: str | None = Field(alias="derivedFrom")
    effective_timing: dict[str, Any] = Field(alias="effectiveTiming",
                                             description="The timing in force: the severity's, with the rule's "
                                             "laid over it.")


class RuleWithStatus(RuleInForce):
    status: dict[str, Any] | None = Field(description="The latest evaluation; null before the first.")


class RulesView(Document):
    rules: list[RuleWithStatus]
    figures: dict[str, str]


class SilenceDocument(Document):
    id: int
    state: Literal["pending", "active", "expired"]
    matchers: list[str]
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    created_at: Timestamp = Field(alias="createdAt")
    comment: str
    expired_by: str | None = Field(alias="expiredBy")


class ListedSilence(SilenceDocument):
    matching: list[str] = Field(description="Fingerprints of the open alerts it matches now.")


class SilencesView(Document):
    silences: list[ListedSilence]


class WindowDocument(Document):
    id: int
    type: Literal["one_off", "weekly", "cron"]
    reason: str
    services: list[str] | None
    created_by: str = Field(alias="createdBy")
    created_at: Timestamp = Field(alias="createdAt")


class Occurrence(Document):
    window: int
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    services: list[str] | None
    reason: str


class MaintenanceView(Document):
    windows: list[WindowDocument]
    active: list[Occurrence]
    upcoming: list[Occurrence]


class LastStatus(Document):
    http_status: int | None = Field(None, alias="httpStatus", description="null: no HTTP answer (refused, "
                                    "timeout), or a channel that does not speak HTTP (email, apprise-*).")
    smtp_code: int | None = Field(None, alias="smtpCode", description="email only: the SMTP server's reply code "
                                  "(4xx retried, 5xx failed); null when no reply came.")
    error: str | None = None
    answer: str | None = Field(None, description="The receiver's body, truncated and sanitised.")
    latency_ms: float | None = Field(None, alias="latencyMs")


class DeliveryDocument(Document):
    id: int
    idempotency_key: str = Field(alias="idempotencyKey", description="Sent as the Idempotency-Key header on every "
                                 "attempt.")
    notification_id: str = Field(alias="notificationId")
    channel: str
    event: Literal["firing", "resolved", "acknowledged", "escalated"]
    severity: str
    summary: str
    status: Literal["pending", "sending", "delivered", "failed", "gave_up", "cancelled"]
    attempts: int
    created_at: Timestamp = Field(alias="createdAt")
    last_attempt_at: Timestamp | None = Field(alias="lastAttemptAt")
    last_status: LastStatus | None = Field(alias="lastStatus")
    next_attempt_at: Timestamp | None = Field(alias="nextAttemptAt")
    give_up_at: Timestamp = Field(alias="giveUpAt")
    finished_at: Timestamp | None = Field(alias="finishedAt")


class DeliveriesView(Document):
    deliveries: list[DeliveryDocument]
    counts: dict[str, int] = Field(description="Deliveries by status.")
    next: NextPage | None


class ConfigurationView(Document):
    thresholds: dict[str, Any]
    severity_matrix: dict[str, Any] | list[Any] = Field(alias="severityMatrix")
    channels: dict[str, Any] | list[Any]
    routing: dict[str, Any]
    delivery: dict[str, Any]
    alerting: dict[str, Any]
    rules: list[RuleInForce]
    inhibitions: list[dict[str, Any]]


class AlertView(RootModel[Any]):
    """The view the action names."""

    model_config = ConfigDict(defer_build=True)
    root: ActiveView | HistoryView | RulesView | SilencesView | MaintenanceView | DeliveriesView | ConfigurationView


class AlertAnswer(Document):
    action: Literal["acknowledge", "resolve"]
    alert: AlertDocument


class TriggerAnswer(Document):
    action: Literal["trigger"]
    created: bool = Field(description="false when the same alert is still open.")
    alert: AlertDocument
    sends_after: Timestamp | None = Field(alias="sendsAfter", description="When the alert is (or was) first sent; "
                                          "null when it is not new, muted, or no channel carries it.")


class SilenceAnswer(Document):
    action: Literal["silence", "expire_silence"]
    silence: SilenceDocument


class WindowAnswer(Document):
    action: Literal["maintenance"]
    window: WindowDocument


class DeletedWindowAnswer(Document):
    action: Literal["delete_maintenance"]
    deleted: WindowDocument


class AddedRuleAnswer(Document):
    action: Literal["add_rule"]
    rule: RuleInForce
    warnings: list[str]


class UpdatedRuleAnswer(Document):
    action: Literal["update_rule"]
    before: RuleSpec
    rule: RuleInForce
    warnings: list[str]


class DeletedRuleAnswer(Document):
    action: Literal["delete_rule"]
    before: RuleSpec
    rule: RuleSpec | None = Field(description="A default rule as the environment defines it again; null when "
                                  "an added rule is gone.")


class Inhibition(Document):
    source: list[str]
    target: list[str]
    equal: list[str]


class InhibitionsAnswer(Document):
    action: Literal["update_inhibitions"]
    before: list[Inhibition]
    inhibitions: list[Inhibition]


class ProbeAnswer(Document):
    channel: str
    kind: Literal["webhook", "slack", "pagerduty", "sentry", "email", "apprise"]
    target: str = Field(description="The receiver's URL, masked.")
    ok: bool
    status: int | None = Field(description="The HTTP status (null for email and apprise).")
    smtp_code: int | None = Field(None, alias="smtpCode", description="email only: the SMTP server's reply code.")
    service: str | None = Field(None, description="apprise only: the service its URL names.")
    latency_ms: float | None = Field(alias="latencyMs")
    body: str | None = Field(description="The receiver's answer, truncated to 500 characters: the HTTP body, the "
                             "SMTP server's reply, or what Apprise logged.")
    error: str | None
    idempotency_key: str | None = Field(alias="idempotencyKey")
    resolve: dict[str, Any] | None = Field(None, description="PagerDuty only: the resolve sent right after the test "
                                           "trigger (same dedup_key, unique per test), so that no test incident "
                                           "stays open.")


class TestAnswer(Document):
    action: Literal["test"]
    ok: bool = Field(description="Every receiver answered 2xx.")
    sent_at: Timestamp = Field(alias="sentAt")
    results: list[ProbeAnswer]


class ActionAnswer(RootModel[Any]):
    """What the action did (the alert, silence, window or rule as it now is), or for test what each
    receiver answered."""

    model_config = ConfigDict(defer_build=True)
    root: (AlertAnswer | TriggerAnswer | SilenceAnswer | WindowAnswer | DeletedWindowAnswer | AddedRuleAnswer
           | UpdatedRuleAnswer | DeletedRuleAnswer | InhibitionsAnswer | TestAnswer)


# --- GET: the views -------------------------------------------------------------------------


class ViewQuery(QueryModel):
    action: str


class ActiveQuery(ViewQuery):
    state: Annotated[str | None, choice(PENDING, FIRING)] = None
    severity: Annotated[str | None, choice(*SEVERITIES)] = None


class HistoryQuery(ViewQuery):
    limit: Annotated[int, page_size(MAX_PAGE)] = 50
    fingerprint: Fingerprint = None
    since: Moment = None
    state: Annotated[str | None, choice(*STATES)] = None
    severity: Annotated[str | None, choice(*SEVERITIES)] = None
    before: Before = None


class SilencesQuery(ViewQuery):
    state: Annotated[str | None, choice(*SILENCE_STATES)] = None


class DeliveriesQuery(ViewQuery):
    limit: Annotated[int, page_size(MAX_PAGE)] = 50
    channel: ChannelName = None
    status: Annotated[str | None, choice(*STATUSES)] = None
    before: Before = None


@dataclass(frozen=True)
class View:
    """One GET view: the key it needs, the parameters it takes, what it answers."""

    role: str
    query: type[ViewQuery]
    handler: Callable[[Any], Any]


def _engine() -> AlertEngine:
    return current_monitoring().alerting


def _outbox() -> Outbox:
    return current_monitoring().outbox


def _actor() -> Actor:
    return Actor(g.api_key.key_id, client_ip(), request.path)


def _rules_by_name() -> dict[str, Rule]:
    return {rule.name: rule for rule in _engine().rulebook.rules()}


def _alert_json(alert: Alert, rules: dict[str, Rule] | None = None) -> dict[str, Any]:
    return _engine().alert_json(alert, rules if rules is not None else _rules_by_name())


def active(query: ActiveQuery) -> Any:
    """Pending and firing alerts, newest first, muted and acknowledged ones included."""
    found = _engine().ledger.listing(states=(query.state,) if query.state else (PENDING, FIRING),
                                     severity=query.severity, limit=1000)
    rules = _rules_by_name()
    return {
        "alerts": [_alert_json(a, rules) for a in found],
        "counts": {s: sum(1 for a in found if a.state == s) for s in (FIRING, PENDING)},
    }


def history(query: HistoryQuery) -> Any:
    """Every alert kept (ALERT_RETENTION_DAYS), newest first, each with what happened to it."""
    ledger = _engine().ledger
    page = ledger.listing(states=(query.state,) if query.state else STATES, severity=query.severity,
                          fingerprint=query.fingerprint, before_id=query.before, since=query.since,
                          limit=query.limit)
    events = ledger.events_of(a.id for a in page if a.id is not None)
    rules = _rules_by_name()
    return {
        "alerts": [{**_alert_json(a, rules), "events": [e.to_json() for e in events.get(a.id or 0, [])]}
                   for a in page],
        "next": next_page(page, query.limit),
    }


def rules(_: ViewQuery) -> Any:
    """Every rule in force, where it comes from, and what its latest evaluation found."""
    engine = _engine()
    status = engine.rule_status()
    listed = []
    for rule in engine.rulebook.rules():
        state = status.get(rule.name, {})
        listed.append({**_rule_json(rule), "status": {
            **state, "evaluatedAt": isoformat(state.get("evaluatedAt"))} if state else None})
    return {"rules": listed, "figures": BUILTIN_FIGURES}


def _rule_json(rule: Rule) -> dict[str, Any]:
    """A rule, where it comes from (default, derived from a health check, custom) and the timing in force."""
    return {**rule.to_json(), "origin": rule.origin, "derivedFrom": rule.derived_from or None,
            "effectiveTiming": _engine().policy.timing(rule.severity, rule.timing).to_json()}


def silences(query: SilencesQuery) -> Any:
    """Silences, newest first, each with the open alerts it matches now."""
    engine = _engine()
    now = engine.clock.now()
    found = engine.silences.listing(query.state)
    open_alerts = engine.ledger.listing(states=(PENDING, FIRING), limit=1000)
    return {
        "silences": [
            {**s.to_json(now), "matching": [a.fingerprint for a in open_alerts if matches_all(s.matchers, a.labels)]}
            for s in found
        ]
    }


def maintenance(_: ViewQuery) -> Any:
    """Maintenance windows not over yet, what is in progress, and what starts within seven days."""
    engine = _engine()
    now = engine.clock.now()
    calendar = engine.maintenance
    return {
        "windows": [w.to_json() for w in calendar.list_windows()],
        "active": [o.to_json() for o in calendar.active(now)],
        "upcoming": [o.to_json() for o in calendar.windows_overlapping(now, now + UPCOMING_MAINTENANCE) if o.start > now],
    }


def deliveries(query: DeliveriesQuery) -> Any:
    """Outbox rows, newest first: channel, attempts, last status, next attempt."""
    outbox = _outbox()
    page = outbox.page(status=query.status, channel=query.channel, before_id=query.before, limit=query.limit)
    return {
        "deliveries": [d.to_json() for d in page],
        "counts": outbox.counts_by_status(),
        "next": next_page(page, query.limit),
    }


def _thresholds(monitoring: Monitoring) -> dict[str, Any]:
    settings = monitoring.settings
    return {
        "paymentFailureRate": settings.payment_failure_threshold,
        "dbResponseMs": settings.db_response_threshold_ms,
        "apiResponseP95Ms": settings.api_response_threshold_ms,
        "memoryUsagePercent": settings.memory_usage_threshold,
        "errorRate": settings.error_rate_threshold,
    }


def _policy(monitoring: Monitoring) -> dict[str, Any]:
    return {**monitoring.alerting.policy.to_json(),
            "escalationChannel": monitoring.outbox.routes.escalation}


# Sections of action=configuration, in order.
CONFIGURATION_SECTIONS: dict[str, Callable[[Monitoring], Any]] = {
    "thresholds": _thresholds,
    "severityMatrix": lambda monitoring: monitoring.alerting.policy.matrix_json(),
    "channels": lambda monitoring: monitoring.outbox.channels.describe(),
    "routing": lambda monitoring: monitoring.outbox.routes.to_json(),
    "delivery": lambda monitoring: {
        **monitoring.outbox.policy.to_json(),
        "intervalSeconds": monitoring.settings.notify_delivery_interval,
    },
    "alerting": _policy,
    "rules": lambda monitoring: [_rule_json(r) for r in monitoring.alerting.rulebook.rules()],
    "inhibitions": lambda monitoring: [r.to_json()
                                       for r in monitoring.alerting.inhibitions.rules()],
}


def configuration(_: ViewQuery) -> Any:
    """Thresholds, severity matrix, channels (secrets masked), routing, delivery, rules and inhibitions."""
    monitoring = current_monitoring()
    return {name: section(monitoring) for name, section in CONFIGURATION_SECTIONS.items()}


GET_VIEWS: dict[str, View] = {
    "active": View(METRICS, ActiveQuery, active),
    "configuration": View(METRICS, ViewQuery, configuration),
    "deliveries": View(ADMIN, DeliveriesQuery, deliveries),
    "history": View(METRICS, HistoryQuery, history),
    "maintenance": View(METRICS, ViewQuery, maintenance),
    "rules": View(METRICS, ViewQuery, rules),
    "silences": View(METRICS, SilencesQuery, silences),
}


def _lookup(table: dict[str, Any], action: Any) -> Any:
    valid = ", ".join(sorted(table))
    if action is None or action == "":
        raise ApiError(400, f"action is required; valid actions: {valid}", "invalid_action")
    if not isinstance(action, str) or action not in table:
        raise ApiError(400, f"unknown action {str(action)[:40]!r}; valid actions: {valid}", "invalid_action")
    return table[action]


class AlertViewQuery(QueryModel):
    """Every parameter of every view (each view reads its own; the others are ignored)."""

    action: Annotated[str, choice(*sorted(GET_VIEWS))] = Required()
    state: Annotated[str | None, choice(*dict.fromkeys(STATES + SILENCE_STATES))] = Field(
        None, description="active: pending or firing; history: also resolved; silences: pending, active or expired.")
    severity: Annotated[str | None, choice(*SEVERITIES)] = Field(None, description="active, history: only this severity.")
    fingerprint: Fingerprint = Field(None, description="history: the episodes of one alert.")
    since: Moment = Field(None, description="history: alerts open at or after this time.")
    status: Annotated[str | None, choice(*STATUSES)] = Field(None, description="deliveries: only this status.")
    channel: ChannelName = Field(None, description="deliveries: only this channel (apprise: every Apprise channel).")
    limit: Annotated[int, page_size(MAX_PAGE)] = Field(50, description="deliveries, history: page size.")
    before: Before = Field(None, description="deliveries, history: the `next.before` of the previous page.")

    @classmethod
    def from_request(cls, raw: dict[str, Any]) -> ViewQuery:
        """The named view's own parameters; the admin key first for an admin view."""
        view: View = _lookup(GET_VIEWS, raw.get("action"))
        if view.role == ADMIN:
            check_key(ADMIN)
        return view.query.model_validate(raw)


@endpoint(key=METRICS, query=AlertViewQuery, responses={200: AlertView}, tags=["alerts"],
          descriptions={200: "The view the action names."})
def alerts_get(query: ViewQuery) -> Response:
    """Alert views

    Read key: `active` (pending and firing alerts, muted and acknowledged ones included),
    `history` (every alert kept, with its events; page with `before`), `rules` (rules in force
    and their latest evaluation), `silences`, `maintenance` (windows, in progress, next seven
    days), `configuration` (thresholds, severity matrix, channels with secrets masked, routing,
    delivery policy, grouping, rules, inhibitions). Admin key: `deliveries` (the notification
    outbox, newest first).
    """
    return jsonify(GET_VIEWS[query.action].handler(query))


# --- POST: the actions ------------------------------------------------------------------------


def _rule_fields_schema(required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a rule as a request takes them: those of RuleSpec, durations also in seconds."""
    schema = RuleSpec.model_json_schema(by_alias=True)
    schema.pop("required", None)
    for name in ("window", "for", "keep_firing_for"):
        schema["properties"][name]["type"] = ["string", "number"]
    schema["properties"]["timing"]["additionalProperties"] = _DURATION_SCHEMA
    return {**schema, "additionalProperties": False, **({"required": list(required)} if required else {})}


def _replace(schema: dict[str, Any], new: dict[str, Any]) -> None:
    schema.clear()
    schema.update(new)


class _RuleFieldsSchema:
    """RuleSpec's schema for the rule fields, drawn when a document is generated (not at import:
    a worker that never serves the document never builds RuleSpec)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, _core_schema: Any, _handler: Any) -> dict[str, Any]:
        return _rule_fields_schema()


# A rule's fields are checked by the rulebook (they come from settings too), with a problem for
# each bad field: the model only sees that it is an object.
RuleFields = Annotated[dict[str, Any], BeforeValidator(_an_object), _RuleFieldsSchema]


class RuleChanges(BaseModel):
    """update_rule: `name` names the rule; the other fields are the changes (checked by the rulebook)."""

    model_config = ConfigDict(extra="allow", defer_build=True,
                              json_schema_extra=lambda schema: _replace(schema, _rule_fields_schema(required=("name",))))

    name: Annotated[str, BeforeValidator(_naming("the rule to change"))] = Field(None, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        return _an_object(value)


def _one_of_id_or_fingerprint(schema: dict[str, Any]) -> None:
    tidy_schema(schema)
    schema["oneOf"] = [{"required": ["id"]}, {"required": ["fingerprint"]}]


class AlertReference(Model):
    """Exactly one of `id` or `fingerprint` names the open alert."""

    model_config = {**Model.model_config, "json_schema_extra": _one_of_id_or_fingerprint}

    id: PositiveId | None = Field(None, description="The alert.")
    fingerprint: Fingerprint = Field(None, description="The open alert.")
    comment: Annotated[str, text_of(0, MAX_COMMENT, nullable=True)] = ""

    @model_validator(mode="after")
    def _one_reference(self) -> AlertReference:
        if (self.id is None) == (self.fingerprint is None):
            raise ValueError("name the alert with id or fingerprint (one of them)")
        return self


class Acknowledge(AlertReference):
    """Stop re-notification and escalation of a firing alert until it resolves; PagerDuty hears acknowledge."""

    action: Literal["acknowledge"]


class Resolve(AlertReference):
    """Resolve an open alert by hand (a manual one, or one whose condition an operator knows is over)."""

    action: Literal["resolve"]


class Trigger(Model):
    """A manual alert: firing at once, sent like any other (grouping, routing, repeats, escalation)."""

    action: Literal["trigger"]
    severity: Annotated[str, choice(*SEVERITIES)] = Required()
    description: Annotated[str, text_of(1, MAX_DESCRIPTION)] = Required(description="What is wrong.")
    service: ServiceName = Field("manual", description="The affected service (groups and maintenance scope by it).")
    summary: Annotated[str, text_of(0, 300, nullable=True)] = ""
    runbook_url: Annotated[str, text_of(0, 500, nullable=True), AfterValidator(_http_url)] = ""


class Silence(Model):
    """Create a silence: matching alerts are tracked and shown, not sent."""

    action: Literal["silence"]
    matchers: Matchers = None
    starts_at: Annotated[Any, WithJsonSchema({"type": ["string", "number"], "format": "date-time"})] = Field(
        None, description="Default now.")
    ends_at: Annotated[Any, WithJsonSchema({"type": ["string", "number"], "format": "date-time"})] = None
    duration: Annotated[Any, WithJsonSchema(_DURATION_SCHEMA)] = Field(
        None, description="Instead of ends_at: e.g. 2h (1m to 90d).")
    comment: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(None, description="Required.")


class ExpireSilence(Model):
    """End a silence now; alerts it muted that still fire are sent at the next evaluation."""

    action: Literal["expire_silence"]
    id: PositiveId = Required(description="The silence.")


class CreateMaintenance(Model):
    """A maintenance window (one-off, weekly or cron, optionally for some services): alerts inside are muted."""

    action: Literal["maintenance"]
    window: Annotated[dict[str, Any], BeforeValidator(lambda value: _window_object(value))] = Required(
        description="{type: one_off, start, end} or {type: weekly, days, start_time, duration, timezone} or "
        "{type: cron, cron, duration, timezone}; optional services, reason, from, until.")


def _window_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError('must be an object such as {"type": "one_off", "start": ..., "end": ...}')
    return value


class DeleteMaintenance(Model):
    action: Literal["delete_maintenance"]
    id: PositiveId = Required(description="The window.")


class AddRule(Model):
    action: Literal["add_rule"]
    rule: RuleFields = Required()


class UpdateRule(Model):
    """Change fields of a rule (``rule.name`` names it; ``"enabled": false`` disables it)."""

    action: Literal["update_rule"]
    rule: RuleChanges = Required()


class DeleteRule(Model):
    """Delete an added rule; a default rule goes back to its environment defaults."""

    action: Literal["delete_rule"]
    name: Annotated[str, BeforeValidator(_naming("the rule to delete"))] = Required(description="The rule.")


class UpdateInhibitions(Model):
    """Replace the inhibition rules (the whole list)."""

    action: Literal["update_inhibitions"]
    inhibitions: Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "object", "properties": {
        "source": _MATCHERS_SCHEMA, "target": _MATCHERS_SCHEMA,
        "equal": {"type": "array", "items": {"type": "string"}}}}})] = Required(description="The whole list.")


class TestChannels(Model):
    """Send a test notification now to one channel (or every configured one) and report the answers."""

    action: Literal["test"]
    channel: ChannelName = Field(None, description="The channel to test (apprise: every Apprise channel); all "
                                                   "configured when absent.")


def _alert_action(body: AlertReference, act: Callable[..., Alert]) -> Any:
    try:
        alert = act(_actor(), body.comment, alert_id=body.id, fingerprint_=body.fingerprint)
    except AlertNotFound:
        raise ApiError(404, "no open alert with that id or fingerprint", "not_found") from None
    except AlertStateConflict as exc:
        raise ApiError(409, str(exc), "invalid_state") from None
    return {"action": body.action, "alert": _alert_json(alert)}  # type: ignore[attr-defined]


def acknowledge(body: Acknowledge) -> Any:
    return _alert_action(body, _engine().acknowledge)


def resolve(body: Resolve) -> Any:
    return _alert_action(body, _engine().resolve)


def trigger(body: Trigger) -> Any:
    try:
        triggered = _engine().trigger(body.severity, body.description, _actor(), service=body.service,
                                      summary=body.summary, runbook_url=body.runbook_url)
    except AlertStateConflict as exc:
        raise ApiError(409, str(exc), "invalid_state") from None
    return {"action": "trigger", "created": triggered.created, "alert": _alert_json(triggered.alert),
            "sendsAfter": isoformat(triggered.sends_at)}


def silence(body: Silence) -> Any:
    engine = _engine()
    spec = parse_silence(body.model_dump(exclude_unset=True, exclude={"action"}), engine.clock.now())
    created = engine.silences.create(spec, _actor())
    return {"action": "silence", "silence": created.to_json(engine.clock.now())}


def expire_silence(body: ExpireSilence) -> Any:
    engine = _engine()
    try:
        ended = engine.silences.expire(body.id, _actor())
    except SilenceNotFound:
        raise ApiError(404, "no silence with that id", "not_found") from None
    except SilenceExpired:
        raise ApiError(409, "that silence has already ended", "invalid_state") from None
    return {"action": "expire_silence", "silence": ended.to_json(engine.clock.now())}


def _window_audit(actor: Actor, action: str, key: str) -> Callable[[Any, Any], None]:
    """The audit entry of a maintenance change, written in the change's own transaction."""
    def record(conn: Any, window: Any) -> None:
        current_monitoring().audit.record(ADMIN_ACTION, actor.who, action, client_ip=actor.client_ip,
                                          path=actor.path, detail={key: window.to_json()}, conn=conn)
    return record


def create_maintenance(body: CreateMaintenance) -> Any:
    spec = parse_window_spec(body.window)
    actor = _actor()
    window = _engine().maintenance.create(spec, created_by=actor.who,
                                          audit=_window_audit(actor, "alerts.maintenance", "window"))
    return {"action": "maintenance", "window": window.to_json()}


def delete_maintenance(body: DeleteMaintenance) -> Any:
    window = _engine().maintenance.delete(body.id, audit=_window_audit(_actor(), "alerts.delete_maintenance",
                                                                       "window"))
    if window is None:
        raise ApiError(404, "no maintenance window with that id", "not_found")
    return {"action": "delete_maintenance", "deleted": window.to_json()}


def _rule_warnings(rule_json: dict[str, Any]) -> list[str]:
    """A figure nothing exports right now is allowed (it may have no data yet), but said."""
    figure = rule_json["figure"]
    if figure in BUILTIN_FIGURES:
        return []
    engine = _engine()
    names = engine.figure_reader(engine.clock.now()).exported_names(parse_duration(rule_json["window"]))
    if figure in names:
        return []
    return [f"no category exports {figure} right now; the rule matches nothing until one does"]


def add_rule(body: AddRule) -> Any:
    try:
        rule = _engine().rulebook.add(body.rule, _actor())
    except RuleExists as exc:
        raise ApiError(409, f"a rule named {exc} exists; change it with update_rule", "rule_exists") from None
    return {"action": "add_rule", "rule": _rule_json(rule), "warnings": _rule_warnings(rule.to_json())}


def update_rule(body: UpdateRule) -> Any:
    name = body.rule.name
    try:
        before, after = _engine().rulebook.update(name, body.rule.model_dump(), _actor())
    except RuleNotFound:
        raise ApiError(404, f"no rule named {name[:64]!r}; see action=rules", "not_found") from None
    return {"action": "update_rule", "before": before.to_json(), "rule": _rule_json(after),
            "warnings": _rule_warnings(after.to_json())}


def delete_rule(body: DeleteRule) -> Any:
    try:
        before, after = _engine().rulebook.remove(body.name, _actor())
    except RuleNotFound:
        raise ApiError(404, f"no rule named {body.name[:64]!r}; see action=rules", "not_found") from None
    return {"action": "delete_rule", "before": before.to_json(), "rule": after.to_json() if after else None}


def update_inhibitions(body: UpdateInhibitions) -> Any:
    before, after = _engine().inhibitions.replace(body.inhibitions, _actor())
    return {"action": "update_inhibitions", "before": [r.to_json() for r in before],
            "inhibitions": [r.to_json() for r in after]}


def test_channels(body: TestChannels) -> Any:
    monitoring = current_monitoring()
    outbox = _outbox()
    name = body.channel
    if name is not None:
        targets = outbox.channels.select(name)  # apprise: every Apprise channel
        if not targets:
            raise ApiError(409, f"channel {name} is not configured: {outbox.channels.why_missing(name)}",
                           "channel_not_configured")
    else:
        targets = list(outbox.channels.channels.values())
        if not targets:
            raise ApiError(409, "no notification channel is configured: set ALERT_WEBHOOK_URL, SLACK_WEBHOOK_URL, "
                           "PAGERDUTY_ROUTING_KEY, SENTRY_DSN, SMTP_URL or APPRISE_URLS", "no_channel_configured")
    results = probe_channels(targets, outbox.sender, monitoring.clock.now())
    monitoring.audit.record(
        ADMIN_ACTION,
        g.api_key.key_id,
        "alerts.test",
        client_ip=client_ip(),
        path=request.path,
        detail={"results": [{"channel": r.channel, "ok": r.ok, "status": r.status, "error": r.error} for r in results]},
    )
    return {
        "action": "test",
        "ok": all(r.ok for r in results),
        "sentAt": isoformat(monitoring.clock.now()),
        "results": [r.to_json() for r in results],
    }


@dataclass(frozen=True)
class Action:
    """One POST action: its body model (the fields it takes) and what it does."""

    body: type[Model]
    handler: Callable[[Any], Any]

    @property
    def fields(self) -> list[str]:
        return [field.alias or name for name, field in self.body.model_fields.items()]


# Every action needs the admin key (checked before the body is read) and is audited.
POST_ACTIONS: dict[str, Action] = {
    "acknowledge": Action(Acknowledge, acknowledge),
    "add_rule": Action(AddRule, add_rule),
    "delete_maintenance": Action(DeleteMaintenance, delete_maintenance),
    "delete_rule": Action(DeleteRule, delete_rule),
    "expire_silence": Action(ExpireSilence, expire_silence),
    "maintenance": Action(CreateMaintenance, create_maintenance),
    "resolve": Action(Resolve, resolve),
    "silence": Action(Silence, silence),
    "test": Action(TestChannels, test_channels),
    "trigger": Action(Trigger, trigger),
    "update_inhibitions": Action(UpdateInhibitions, update_inhibitions),
    "update_rule": Action(UpdateRule, update_rule),
}

# The union of every action's body, built from the table (the Union[...] form takes a tuple).
_ACTION_BODIES = Union[tuple(action.body for action in POST_ACTIONS.values())]  # type: ignore[valid-type]  # noqa: UP007


class AlertAction(RootModel[Any]):
    """The body of one action, told apart by `action`."""

    model_config = ConfigDict(defer_build=True)
    root: Annotated[_ACTION_BODIES, Field(discriminator="action")]  # type: ignore[valid-type]

    @classmethod
    def from_request(cls, data: Any) -> Model:
        """The named action's own body model: the action and unknown fields are said first."""
        if not isinstance(data, dict):
            kind = "null" if data is None else type(data).__name__.replace("str", "string")
            raise ApiError(400, f"the body must be a JSON object, not {kind}", "invalid_body")
        action: Action = _lookup(POST_ACTIONS, data.get("action"))
        allowed = action.fields
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r} for action {data['action']}; allowed: "
                           f"{', '.join(allowed)}", "invalid_body")
        return action.body.model_validate(data)


@endpoint(key=ADMIN, body=AlertAction, responses={200: ActionAnswer, 404: ErrorBody, 409: ErrorBody},
          tags=["alerts"], descriptions={
              404: "No such alert, silence, window or rule.",
              409: "The alert is not open or not firing, already acknowledged; the silence has ended; the rule "
                   "exists; the channel (or every channel) is not configured.",
          })
def alerts_post(body: Model) -> Response:
    """Alert actions

    Admin key; every action is written to the audit log (rule and inhibition changes as
    configuration changes with before and after). `trigger` (severity, description): a manual
    alert, sent like any other. `acknowledge` / `resolve` (id or fingerprint, comment).
    `silence` (matchers, comment, starts_at, ends_at or duration) and `expire_silence` (id).
    `maintenance` (window) and `delete_maintenance` (id). `add_rule` / `update_rule` (rule) and
    `delete_rule` (name). `update_inhibitions` (inhibitions). `test` (channel): send a test
    notification now and answer with each receiver's status, latency and reply.
    """
    # A silence, window, rule or inhibition list the domain finds wrong answers 400 with its
    # problems (monitoring.problems, mapped by @endpoint).
    return jsonify(POST_ACTIONS[body.action].handler(body))  # type: ignore[attr-defined]
