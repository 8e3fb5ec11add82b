"""/api/monitoring/alerts: one endpoint, many actions (``?action=`` on GET, ``"action"`` in
the POST body), dispatched through GET_ACTIONS / POST_ACTIONS. A new action is one function
and one table entry (plus its OpenAPI enum value); the configuration view is assembled from
CONFIGURATION_SECTIONS the same way.

Views (GET): active, history, rules, silences, maintenance, configuration (read key);
deliveries (admin key). Actions (POST, admin key, audited): trigger, acknowledge, resolve,
silence, expire_silence, maintenance, delete_maintenance, add_rule, update_rule, delete_rule,
update_inhibitions, test. The logic lives in monitoring.alerts and monitoring.notify.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from flask import g, jsonify, request

from monitoring.alerts.admin import (
    Actor,
    InvalidInhibitions,
    InvalidRule,
    InvalidSilence,
)
from monitoring.alerts.engine import AlertEngine, AlertNotFound, AlertStateConflict
from monitoring.alerts.figures import BUILTIN_FIGURES
from monitoring.alerts.lifecycle import FIRING, PENDING, STATES, Alert
from monitoring.alerts.matchers import matches_all
from monitoring.alerts.rules import Rule, RuleExists, RuleNotFound
from monitoring.alerts.silences import (
    SILENCE_FIELDS,
    SilenceExpired,
    SilenceNotFound,
    parse_silence,
)
from monitoring.alerts.silences import STATES as SILENCE_STATES
from monitoring.api.auth import check_key, client_ip, require_key
from monitoring.api.blueprint import centinela_blueprint
from monitoring.api.errors import ApiError, json_object
from monitoring.api.params import MAX_ID, choice_arg, int_arg, time_arg
from monitoring.clock import isoformat
from monitoring.durations import DAY, parse_duration
from monitoring.extension import Monitoring, current_monitoring
from monitoring.notify.channel import CHANNEL_NAMES, CHANNEL_NAMES_SHOWN, is_channel_name
from monitoring.notify.model import SEVERITIES
from monitoring.notify.outbox import STATUSES, Outbox
from monitoring.notify.probe import probe_channels
from monitoring.security.audit import ADMIN_ACTION
from monitoring.security.keys import ADMIN, METRICS
from monitoring.uptime.maintenance import (
    InvalidMaintenanceWindow,
    parse_window_spec,
)

bp = centinela_blueprint("centinela_alerts", __name__, "/api/monitoring")

MAX_PAGE = 500
UPCOMING_MAINTENANCE = 7 * DAY
MAX_COMMENT = 500
MAX_DESCRIPTION = 1000
_SERVICE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def _outbox() -> Outbox:
    return current_monitoring().outbox


def _engine() -> AlertEngine:
    return current_monitoring().alerting


def _actor() -> Actor:
    return Actor(g.api_key.key_id, client_ip(), request.path)


@dataclass(frozen=True)
class Action:
    """One action: the key it needs, what it does, and (POST) the body fields it accepts besides action."""

    role: str
    handler: Callable[[dict[str, Any]], Any]
    fields: tuple[str, ...] = ()


def _problems(status: int, code: str, what: str, problems: list[dict[str, str]]) -> ApiError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ApiError(status, f"{what}: {first['field']} {first['message']}{more}", code, problems=problems)


# --- GET actions ------------------------------------------------------------------------------






def _rules_by_name() -> dict[str, Rule]:
    return {rule.name: rule for rule in _engine().rulebook.rules()}


def _alert_json(alert: Alert, rules: dict[str, Rule] | None = None) -> dict[str, Any]:
    return _engine().alert_json(alert, rules if rules is not None else _rules_by_name())


def active(_: dict[str, Any]) -> Any:
    """Pending and firing alerts, newest first, muted and acknowledged ones included."""
    state = choice_arg("state", (PENDING, FIRING))
    found = _engine().ledger.listing(states=(state,) if state else (PENDING, FIRING),
                                     severity=choice_arg("severity", SEVERITIES), limit=1000)
    rules = _rules_by_name()
    return {
        "alerts": [_alert_json(a, rules) for a in found],
        "counts": {s: sum(1 for a in found if a.state == s) for s in (FIRING, PENDING)},
    }


def history(_: dict[str, Any]) -> Any:
    """Every alert kept (ALERT_RETENTION_DAYS), newest first, each with what happened to it."""
    limit = int_arg("limit", 50, 1, MAX_PAGE)
    assert limit is not None
    fingerprint = request.args.get("fingerprint") or None
    if fingerprint is not None and not _FINGERPRINT.fullmatch(fingerprint):
        raise ApiError(400, "fingerprint must be 16 hexadecimal digits", "invalid_parameter")
    since = time_arg("since")
    state = choice_arg("state", STATES)
    ledger = _engine().ledger
    page = ledger.listing(states=(state,) if state else STATES, severity=choice_arg("severity", SEVERITIES),
                          fingerprint=fingerprint, before_id=int_arg("before", None, 1, MAX_ID), since=since,
                          limit=limit)
    events = ledger.events_of(a.id for a in page if a.id is not None)
    rules = _rules_by_name()
    return {
        "alerts": [{**_alert_json(a, rules), "events": [e.to_json() for e in events.get(a.id or 0, [])]}
                   for a in page],
        "next": {"before": page[-1].id} if len(page) == limit else None,
    }


def rules(_: dict[str, Any]) -> Any:
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


def silences(_: dict[str, Any]) -> Any:
    """Silences, newest first, each with the open alerts it matches now."""
    engine = _engine()
    now = engine.clock.now()
    found = engine.silences.listing(choice_arg("state", SILENCE_STATES))
    open_alerts = engine.ledger.listing(states=(PENDING, FIRING), limit=1000)
    return {
        "silences": [
            {**s.to_json(now), "matching": [a.fingerprint for a in open_alerts if matches_all(s.matchers, a.labels)]}
            for s in found
        ]
    }


def maintenance(_: dict[str, Any]) -> Any:
    """Maintenance windows not over yet, what is in progress, and what starts within seven days."""
    engine = _engine()
    now = engine.clock.now()
    calendar = engine.maintenance
    return {
        "windows": [w.to_json() for w in calendar.list_windows()],
        "active": [o.to_json() for o in calendar.active(now)],
        "upcoming": [o.to_json() for o in calendar.windows_overlapping(now, now + UPCOMING_MAINTENANCE) if o.start > now],
    }


def deliveries(_: dict[str, Any]) -> Any:
    """Outbox rows, newest first: channel, attempts, last status, next attempt."""
    outbox = _outbox()
    limit = int_arg("limit", 50, 1, MAX_PAGE)
    assert limit is not None
    channel = request.args.get("channel") or None
    if channel is not None and not is_channel_name(channel):
        raise ApiError(400, f"channel must be one of: {CHANNEL_NAMES_SHOWN}", "invalid_parameter")
    page = outbox.page(
        status=choice_arg("status", STATUSES),
        channel=channel,
        before_id=int_arg("before", None, 1, MAX_ID),
        limit=limit,
    )
    return {
        "deliveries": [d.to_json() for d in page],
        "counts": outbox.counts_by_status(),
        "next": {"before": page[-1].id} if len(page) == limit else None,
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


def configuration(_: dict[str, Any]) -> Any:
    """Thresholds, severity matrix, channels (secrets masked), routing, delivery, rules and inhibitions."""
    monitoring = current_monitoring()
    return {name: section(monitoring) for name, section in CONFIGURATION_SECTIONS.items()}


GET_ACTIONS: dict[str, Action] = {
    "active": Action(METRICS, active),
    "configuration": Action(METRICS, configuration),
    "deliveries": Action(ADMIN, deliveries),
    "history": Action(METRICS, history),
    "maintenance": Action(METRICS, maintenance),
    "rules": Action(METRICS, rules),
    "silences": Action(METRICS, silences),
}


# --- POST actions -----------------------------------------------------------------------------


def _text(body: dict[str, Any], name: str, limit: int, required: bool = False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise ApiError(400, f"{name} must be text of {'1' if required else '0'} to {limit} characters", "invalid_body")
    return value


def _reference(body: dict[str, Any]) -> dict[str, Any]:
    """Exactly one of ``id`` (a whole number) or ``fingerprint`` (16 hex digits) names the alert."""
    alert_id, fingerprint = body.get("id"), body.get("fingerprint")
    if (alert_id is None) == (fingerprint is None):
        raise ApiError(400, "name the alert with id or fingerprint (one of them)", "invalid_body")
    if alert_id is not None:
        _positive_id(body)
    if fingerprint is not None and (not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint)):
        raise ApiError(400, "fingerprint must be 16 hexadecimal digits", "invalid_body")
    return {"alert_id": alert_id, "fingerprint_": fingerprint}


def _alert_action(body: dict[str, Any], act: Callable[..., Alert], name: str) -> Any:
    reference = _reference(body)
    comment = _text(body, "comment", MAX_COMMENT)
    try:
        alert = act(_actor(), comment, **reference)
    except AlertNotFound:
        raise ApiError(404, "no open alert with that id or fingerprint", "not_found") from None
    except AlertStateConflict as exc:
        raise ApiError(409, str(exc), "invalid_state") from None
    return {"action": name, "alert": _alert_json(alert)}


def acknowledge(body: dict[str, Any]) -> Any:
    """Stop re-notification and escalation of a firing alert until it resolves; PagerDuty hears acknowledge."""
    return _alert_action(body, _engine().acknowledge, "acknowledge")


def resolve(body: dict[str, Any]) -> Any:
    """Resolve an open alert by hand (a manual one, or one whose condition an operator knows is over)."""
    return _alert_action(body, _engine().resolve, "resolve")


def trigger(body: dict[str, Any]) -> Any:
    """A manual alert: firing at once, sent like any other (grouping, routing, repeats, escalation)."""
    severity = body.get("severity")
    if severity not in SEVERITIES:
        raise ApiError(400, f"severity must be one of: {', '.join(SEVERITIES)}", "invalid_body")
    description = _text(body, "description", MAX_DESCRIPTION, required=True)
    service = body.get("service", "manual")
    if not isinstance(service, str) or not _SERVICE.fullmatch(service):
        raise ApiError(400, "service must be a name of 1 to 64 of a-z, 0-9, '-', '_'", "invalid_body")
    summary = _text(body, "summary", 300)
    runbook = _text(body, "runbook_url", 500)
    if runbook and not runbook.startswith(("http://", "https://")):
        raise ApiError(400, "runbook_url must be an http:// or https:// URL", "invalid_body")
    engine = _engine()
    try:
        triggered = engine.trigger(severity, description, _actor(), service=service, summary=summary,
                                   runbook_url=runbook)
    except AlertStateConflict as exc:
        raise ApiError(409, str(exc), "invalid_state") from None
    return {"action": "trigger", "created": triggered.created, "alert": _alert_json(triggered.alert),
            "sendsAfter": isoformat(triggered.sends_at)}


def silence(body: dict[str, Any]) -> Any:
    """Create a silence: matching alerts are tracked and shown, not sent."""
    engine = _engine()
    try:
        spec = parse_silence(body, engine.clock.now())
    except InvalidSilence as exc:
        raise _problems(400, "invalid_silence", "the silence is not valid", exc.problems) from None
    created = engine.silences.create(spec, _actor())
    return {"action": "silence", "silence": created.to_json(engine.clock.now())}


def _positive_id(body: dict[str, Any]) -> int:
    value = body.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(400, "id must be a whole number from 1", "invalid_body")
    return value


def expire_silence(body: dict[str, Any]) -> Any:
    """End a silence now; alerts it muted that still fire are sent at the next evaluation."""
    engine = _engine()
    try:
        ended = engine.silences.expire(_positive_id(body), _actor())
    except SilenceNotFound:
        raise ApiError(404, "no silence with that id", "not_found") from None
    except SilenceExpired:
        raise ApiError(409, "that silence has already ended", "invalid_state") from None
    return {"action": "expire_silence", "silence": ended.to_json(engine.clock.now())}


def create_maintenance(body: dict[str, Any]) -> Any:
    """A maintenance window (one-off, weekly or cron, optionally for some services): alerts inside are muted."""
    engine = _engine()
    spec_body = body.get("window")
    if not isinstance(spec_body, dict):
        raise ApiError(400, "window must be an object such as {\"type\": \"one_off\", \"start\": ..., \"end\": ...}",
                       "invalid_body")
    try:
        spec = parse_window_spec(spec_body)
    except InvalidMaintenanceWindow as exc:
        raise _problems(400, "invalid_window", "the maintenance window is not valid", exc.problems) from None
    actor = _actor()
    window = engine.maintenance.create(spec, created_by=actor.who,
                                       audit=_window_audit(actor, "alerts.maintenance", "window"))
    return {"action": "maintenance", "window": window.to_json()}


def _window_audit(actor: Any, action: str, key: str) -> Callable[[Any, Any], None]:
    """The audit entry of a maintenance change, written in the change's own transaction."""
    def record(conn: Any, window: Any) -> None:
        current_monitoring().audit.record(ADMIN_ACTION, actor.who, action, client_ip=actor.client_ip,
                                          path=actor.path, detail={key: window.to_json()}, conn=conn)
    return record


def delete_maintenance(body: dict[str, Any]) -> Any:
    engine = _engine()
    window_id = _positive_id(body)
    window = engine.maintenance.delete(window_id, audit=_window_audit(_actor(), "alerts.delete_maintenance", "window"))
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


def _rule_body(body: dict[str, Any]) -> dict[str, Any]:
    rule = body.get("rule")
    if not isinstance(rule, dict):
        raise ApiError(400, "rule must be an object (see action=rules for the fields)", "invalid_body")
    return rule


def add_rule(body: dict[str, Any]) -> Any:
    engine = _engine()
    try:
        rule = engine.rulebook.add(_rule_body(body), _actor())
    except InvalidRule as exc:
        raise _problems(400, "invalid_rule", "the rule is not valid", exc.problems) from None
    except RuleExists as exc:
        raise ApiError(409, f"a rule named {exc} exists; change it with update_rule", "rule_exists") from None
    rule_json = rule.to_json()
    return {"action": "add_rule", "rule": _rule_json(rule), "warnings": _rule_warnings(rule_json)}


def update_rule(body: dict[str, Any]) -> Any:
    """Change fields of a rule (``rule.name`` names it; ``"enabled": false`` disables it)."""
    changes = _rule_body(body)
    name = changes.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "rule.name must name the rule to change", "invalid_body")
    try:
        before, after = _engine().rulebook.update(name, changes, _actor())
    except RuleNotFound:
        raise ApiError(404, f"no rule named {name[:64]!r}; see action=rules", "not_found") from None
    except InvalidRule as exc:
        raise _problems(400, "invalid_rule", "the rule is not valid", exc.problems) from None
    after_json = after.to_json()
    return {"action": "update_rule", "before": before.to_json(), "rule": _rule_json(after),
            "warnings": _rule_warnings(after_json)}


def delete_rule(body: dict[str, Any]) -> Any:
    """Delete an added rule; a default rule goes back to its environment defaults."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "name must name the rule to delete", "invalid_body")
    try:
        before, after = _engine().rulebook.remove(name, _actor())
    except RuleNotFound:
        raise ApiError(404, f"no rule named {name[:64]!r}; see action=rules", "not_found") from None
    return {"action": "delete_rule", "before": before.to_json(), "rule": after.to_json() if after else None}


def update_inhibitions(body: dict[str, Any]) -> Any:
    """Replace the inhibition rules (the whole list)."""
    try:
        before, after = _engine().inhibitions.replace(body.get("inhibitions"), _actor())
    except InvalidInhibitions as exc:
        raise _problems(400, "invalid_inhibitions", "the inhibition rules are not valid", exc.problems) from None
    return {"action": "update_inhibitions", "before": [r.to_json() for r in before],
            "inhibitions": [r.to_json() for r in after]}


def test_channels(body: dict[str, Any]) -> Any:
    """Send a test notification now to one channel (or every configured one) and report the answers."""
    monitoring = current_monitoring()
    outbox = _outbox()
    name = body.get("channel")
    if name is not None:
        if not is_channel_name(name):
            raise ApiError(400, f"channel must be one of: {CHANNEL_NAMES_SHOWN}", "invalid_body")
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


POST_ACTIONS: dict[str, Action] = {
    "acknowledge": Action(ADMIN, acknowledge, ("id", "fingerprint", "comment")),
    "add_rule": Action(ADMIN, add_rule, ("rule",)),
    "delete_maintenance": Action(ADMIN, delete_maintenance, ("id",)),
    "delete_rule": Action(ADMIN, delete_rule, ("name",)),
    "expire_silence": Action(ADMIN, expire_silence, ("id",)),
    "maintenance": Action(ADMIN, create_maintenance, ("window",)),
    "resolve": Action(ADMIN, resolve, ("id", "fingerprint", "comment")),
    "silence": Action(ADMIN, silence, SILENCE_FIELDS),
    "test": Action(ADMIN, test_channels, ("channel",)),
    "trigger": Action(ADMIN, trigger, ("severity", "description", "service", "summary", "runbook_url")),
    "update_inhibitions": Action(ADMIN, update_inhibitions, ("inhibitions",)),
    "update_rule": Action(ADMIN, update_rule, ("rule",)),
}


# --- dispatch ---------------------------------------------------------------------------------


def _lookup(table: dict[str, Action], action: Any) -> Action:
    valid = ", ".join(sorted(table))
    if action is None or action == "":
        raise ApiError(400, f"action is required; valid actions: {valid}", "invalid_action")
    if not isinstance(action, str) or action not in table:
        raise ApiError(400, f"unknown action {str(action)[:40]!r}; valid actions: {valid}", "invalid_action")
    return table[action]


@bp.get("/alerts")
def alerts_get():  # type: ignore[no-untyped-def]
    check_key(METRICS)  # any valid key first: 401 before anything else
    action = _lookup(GET_ACTIONS, request.args.get("action"))
    if action.role == ADMIN:
        check_key(ADMIN)
    return jsonify(action.handler({}))


@bp.post("/alerts")
@require_key(ADMIN)
def alerts_post():  # type: ignore[no-untyped-def]
    body = json_object()
    action = _lookup(POST_ACTIONS, body.get("action"))
    unknown = sorted(set(body) - {"action", *action.fields})
    if unknown:
        allowed = ", ".join(("action",) + action.fields)
        raise ApiError(400, f"unknown field {unknown[0]!r} for action {body['action']}; allowed: {allowed}",
                       "invalid_body")
    return jsonify(action.handler(body))


# --- OpenAPI ----------------------------------------------------------------------------------

_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "429": {"$ref": "#/components/responses/RateLimited"},
}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_MATCHERS = {"type": "array", "maxItems": 20, "items": {"type": "string"},
             "description": 'Alertmanager-style matchers: service="api", route!="/x", alertname=~"A|B", host!~"c.*".'}

# A fixed name, or one Apprise URL's channel (apprise-<name>).
_CHANNEL_NAME = {"type": "string", "pattern": "^(" + "|".join(CHANNEL_NAMES) + "|apprise-[a-z0-9][a-z0-9_-]{0,23})$"}

_DELIVERY_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "idempotencyKey": {"type": "string", "description": "Sent as the Idempotency-Key header on every attempt."},
        "notificationId": {"type": "string"},
        "channel": _CHANNEL_NAME,
        "event": {"type": "string", "enum": ["firing", "resolved", "acknowledged", "escalated"]},
        "severity": {"type": "string"},
        "summary": {"type": "string"},
        "status": {"type": "string", "enum": list(STATUSES)},
        "attempts": {"type": "integer"},
        "createdAt": {"type": "string", "format": "date-time"},
        "lastAttemptAt": _TIME_OR_NULL,
        "lastStatus": {
            "type": ["object", "null"],
            "properties": {
                "httpStatus": {"type": ["integer", "null"], "description": "null: no HTTP answer (refused, timeout), "
                               "or a channel that does not speak HTTP (email, apprise-*)."},
                "smtpCode": {"type": ["integer", "null"], "description": "email only: the SMTP server's reply code "
                             "(4xx retried, 5xx failed); null when no reply came."},
                "error": {"type": "string"},
                "answer": {"type": "string", "description": "The receiver's body, truncated and sanitised."},
                "latencyMs": {"type": ["number", "null"]},
            },
        },
        "nextAttemptAt": _TIME_OR_NULL,
        "giveUpAt": {"type": "string", "format": "date-time"},
        "finishedAt": _TIME_OR_NULL,
    },
}

_PROBE_SCHEMA = {
    "type": "object",
    "properties": {
        "channel": {"type": "string"},
        "kind": {"type": "string", "enum": ["webhook", "slack", "pagerduty", "sentry", "email", "apprise"]},
        "target": {"type": "string", "description": "The receiver's URL, masked."},
        "ok": {"type": "boolean"},
        "status": {"type": ["integer", "null"], "description": "The HTTP status (null for email and apprise)."},
        "smtpCode": {"type": ["integer", "null"], "description": "email only: the SMTP server's reply code."},
        "service": {"type": "string", "description": "apprise only: the service its URL names."},
        "latencyMs": {"type": "number"},
        "body": {"type": "string", "description": "The receiver's answer, truncated to 500 characters: the HTTP "
                 "body, the SMTP server's reply, or what Apprise logged."},
        "error": {"type": "string"},
        "idempotencyKey": {"type": "string"},
        "resolve": {"type": "object", "description": "PagerDuty only: the resolve sent right after the test "
                    "trigger (same dedup_key, unique per test), so that no test incident stays open."},
    },
}

_ALERT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "fingerprint": {"type": "string", "description": "Stable per rule and label set: 16 hex digits."},
        "name": {"type": "string"},
        "rule": {"type": ["string", "null"], "description": "null for a manual alert."},
        "state": {"type": "string", "enum": list(STATES)},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "summary": {"type": "string"},
        "value": {"type": ["number", "null"]},
        "labels": _STRINGS,
        "annotations": _STRINGS,
        "group": _STRINGS,
        "activeAt": {"type": "string", "format": "date-time"},
        "firedAt": _TIME_OR_NULL,
        "resolvedAt": _TIME_OR_NULL,
        "resolvedBy": {"type": ["string", "null"], "description": "evaluation, or the key id that resolved it."},
        "resolveComment": {"type": ["string", "null"]},
        "acknowledged": {"type": ["object", "null"], "properties": {
            "by": {"type": "string"}, "at": {"type": "string", "format": "date-time"}, "comment": {"type": "string"}}},
        "muted": {"type": ["object", "null"], "description": "Why it is not sent: by silence (id), maintenance (id) "
                  "or inhibition (source fingerprint), and since when."},
        "notifications": {"type": "object"},
        "escalation": {"type": "object"},
        "events": {"type": "array", "description": "history only: what happened to it, oldest first.",
                   "items": {"type": "object"}},
    },
}

_RULE_SCHEMA = {
    "type": "object",
    "description": "A rule. add_rule needs name, figure, comparison, threshold, severity and summary; update_rule "
    "needs name and the fields to change.",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$"},
        "figure": {"type": "string", "description": "A built-in figure (" + ", ".join(BUILTIN_FIGURES)
                   + ") or the dotted name of any exported figure (its Datadog name)."},
        "service": {"type": ["string", "null"], "maxLength": 100,
                    "description": "The one service whose requests and errors the rule reads (error_rate, "
                    "api_p95_ms, exported request and error figures); null: every service combined."},
        "match": _MATCHERS,
        "comparison": {"type": "string", "enum": [">", ">=", "<", "<=", "==", "!="]},
        "threshold": {"type": "number"},
        "window": {"type": ["string", "number"], "description": "1m to 30d, e.g. 5m."},
        "for": {"type": ["string", "number"], "description": "0 to 24h: how long it must hold before firing."},
        "keep_firing_for": {"type": ["string", "number"], "description": "0 to 24h: damps flapping."},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "labels": _STRINGS,
        "summary": {"type": "string", "maxLength": 300,
                    "description": "{value}, {threshold}, {value_percent}, {threshold_percent}, {window}, {detail} "
                    "and {<label>} are filled in."},
        "description": {"type": "string", "maxLength": 1000},
        "runbook_url": {"type": "string"},
        "group_by": {"type": "array", "items": {"type": "string"}},
        "timing": {"type": "object", "description": "The rule's own timing, laid over its severity's: group_wait, "
                   "group_interval, repeat_interval, escalate_after (durations; escalate_after may be none).",
                   "properties": {name: {"type": ["string", "number"]} for name in
                                  ("group_wait", "group_interval", "repeat_interval", "escalate_after")},
                   "additionalProperties": False},
        "enabled": {"type": "boolean"},
        "origin": {"type": "string", "enum": ["default", "derived", "custom"], "readOnly": True,
                   "description": "default: one of the five built from the environment; derived: from a health "
                   "check in force (derivedFrom says which); custom: added through the API."},
        "derivedFrom": {"type": ["string", "null"], "readOnly": True},
        "effectiveTiming": {"type": "object", "readOnly": True,
                            "description": "The timing in force: the severity's, with the rule's laid over it."},
    },
}

_GET_PARAMETERS = [
    {"name": "action", "in": "query", "required": True, "schema": {"type": "string", "enum": sorted(GET_ACTIONS)}},
    {"name": "state", "in": "query", "description": "active: pending or firing; history: also resolved; silences: "
     "pending, active or expired.", "schema": {"type": "string",
                                                "enum": sorted(set(STATES) | set(SILENCE_STATES))}},
    {"name": "severity", "in": "query", "description": "active, history: only this severity.",
     "schema": {"type": "string", "enum": list(SEVERITIES)}},
    {"name": "fingerprint", "in": "query", "description": "history: the episodes of one alert.",
     "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}},
    {"name": "since", "in": "query", "description": "history: alerts open at or after this time.",
     "schema": {"type": "string", "format": "date-time"}},
    {"name": "status", "in": "query", "description": "deliveries: only this status.",
     "schema": {"type": "string", "enum": list(STATUSES)}},
    {"name": "channel", "in": "query", "description": "deliveries: only this channel (apprise: every Apprise "
     "channel).", "schema": _CHANNEL_NAME},
    {"name": "limit", "in": "query", "description": "deliveries, history: page size (default 50).",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
    {"name": "before", "in": "query", "description": "deliveries, history: the `next.before` of the previous page.",
     "schema": {"type": "integer", "minimum": 1}},
]

OPENAPI_PATHS = {
    "/api/monitoring/alerts": {
        "get": {
            "summary": "Alert views",
            "description": "Read key: `active` (pending and firing alerts, muted and acknowledged ones included), "
            "`history` (every alert kept, with its events; page with `before`), `rules` (rules in force and their "
            "latest evaluation), `silences`, `maintenance` (windows, in progress, next seven days), `configuration` "
            "(thresholds, severity matrix, channels with secrets masked, routing, delivery policy, grouping, rules, "
            "inhibitions). Admin key: `deliveries` (the notification outbox, newest first).",
            "tags": ["alerts"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": _GET_PARAMETERS,
            "responses": {
                "200": {
                    "description": "The view the action names.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"title": "active", "type": "object", "required": ["alerts", "counts"],
                                     "properties": {"alerts": {"type": "array", "items": _ALERT_SCHEMA},
                                                    "counts": {"type": "object"}}},
                                    {"title": "history", "type": "object", "required": ["alerts", "next"],
                                     "properties": {"alerts": {"type": "array", "items": _ALERT_SCHEMA},
                                                    "next": {"type": ["object", "null"]}}},
                                    {"title": "rules", "type": "object", "required": ["rules", "figures"],
                                     "properties": {"rules": {"type": "array", "items": _RULE_SCHEMA},
                                                    "figures": _STRINGS}},
                                    {"title": "silences", "type": "object", "required": ["silences"],
                                     "properties": {"silences": {"type": "array", "items": {"type": "object"}}}},
                                    {"title": "maintenance", "type": "object",
                                     "required": ["windows", "active", "upcoming"],
                                     "properties": {name: {"type": "array", "items": {"type": "object"}}
                                                    for name in ("windows", "active", "upcoming")}},
                                    {
                                        "title": "deliveries",
                                        "type": "object",
                                        "required": ["deliveries", "counts", "next"],
                                        "properties": {
                                            "deliveries": {"type": "array", "items": _DELIVERY_SCHEMA},
                                            "counts": {"type": "object", "description": "Deliveries by status.",
                                                       "additionalProperties": {"type": "integer"}},
                                            "next": {"type": ["object", "null"]},
                                        },
                                    },
                                    {
                                        "title": "configuration",
                                        "type": "object",
                                        "required": list(CONFIGURATION_SECTIONS),
                                        "properties": {name: {"type": ["object", "array"]}
                                                       for name in CONFIGURATION_SECTIONS},
                                    },
                                ]
                            }
                        }
                    },
                },
                **_ERRORS,
            },
        },
        "post": {
            "summary": "Alert actions",
            "description": "Admin key; every action is written to the audit log (rule and inhibition changes as "
            "configuration changes with before and after). `trigger` (severity, description): a manual alert, sent "
            "like any other. `acknowledge` / `resolve` (id or fingerprint, comment). `silence` (matchers, comment, "
            "starts_at, ends_at or duration) and `expire_silence` (id). `maintenance` (window) and "
            "`delete_maintenance` (id). `add_rule` / `update_rule` (rule) and `delete_rule` (name). "
            "`update_inhibitions` (inhibitions). `test` (channel): send a test notification now and answer with "
            "each receiver's status, latency and reply. 404: no such alert, silence, window or rule; 409: the "
            "alert, silence or channel is not in a state that allows the action.",
            "tags": ["alerts"],
            "security": [{"AdminKey": []}, {"ApiKeyQuery": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["action"],
                            "properties": {
                                "action": {"type": "string", "enum": sorted(POST_ACTIONS)},
                                "channel": {**_CHANNEL_NAME,
                                            "description": "test: the channel to test (apprise: every Apprise "
                                            "channel); all configured when absent."},
                                "severity": {"type": "string", "enum": list(SEVERITIES), "description": "trigger."},
                                "description": {"type": "string", "maxLength": MAX_DESCRIPTION,
                                                "description": "trigger: what is wrong."},
                                "service": {"type": "string", "description": "trigger: the affected service "
                                            "(default manual; groups and maintenance scope by it)."},
                                "summary": {"type": "string", "maxLength": 300, "description": "trigger."},
                                "runbook_url": {"type": "string", "description": "trigger."},
                                "id": {"type": "integer", "minimum": 1, "description": "acknowledge, resolve: the "
                                       "alert; expire_silence: the silence; delete_maintenance: the window."},
                                "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$",
                                                "description": "acknowledge, resolve: the open alert."},
                                "comment": {"type": "string", "description": "acknowledge, resolve, silence "
                                            "(required there)."},
                                "matchers": _MATCHERS,
                                "starts_at": {"type": "string", "format": "date-time",
                                              "description": "silence: default now."},
                                "ends_at": {"type": "string", "format": "date-time", "description": "silence."},
                                "duration": {"type": ["string", "number"],
                                             "description": "silence, instead of ends_at: e.g. 2h (1m to 90d)."},
                                "window": {"type": "object", "description": "maintenance: {type: one_off, start, "
                                           "end} or {type: weekly, days, start_time, duration, timezone} or {type: "
                                           "cron, cron, duration, timezone}; optional services, reason, from, until."},
                                "rule": _RULE_SCHEMA,
                                "name": {"type": "string", "description": "delete_rule: the rule."},
                                "inhibitions": {"type": "array", "description": "update_inhibitions: the whole list.",
                                                "items": {"type": "object", "properties": {
                                                    "source": _MATCHERS, "target": _MATCHERS,
                                                    "equal": {"type": "array", "items": {"type": "string"}}}}},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "What the action did (the alert, silence, window or rule as it now is), or for "
                    "test what each receiver answered.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["action"],
                                "properties": {
                                    "action": {"type": "string"},
                                    "alert": _ALERT_SCHEMA,
                                    "created": {"type": "boolean",
                                                "description": "trigger: false when the same alert is still open."},
                                    "sendsAfter": {**_TIME_OR_NULL, "description": "trigger: when the "
                                                   "alert is (or was) first sent; null when it is not new, muted, "
                                                   "or no channel carries it."},
                                    "silence": {"type": "object"},
                                    "window": {"type": "object"},
                                    "deleted": {"type": "object"},
                                    "rule": {"type": ["object", "null"]},
                                    "before": {"type": ["object", "array"]},
                                    "warnings": {"type": "array", "items": {"type": "string"}},
                                    "inhibitions": {"type": "array"},
                                    "ok": {"type": "boolean", "description": "test: every receiver answered 2xx."},
                                    "sentAt": {"type": "string", "format": "date-time"},
                                    "results": {"type": "array", "items": _PROBE_SCHEMA},
                                },
                            }
                        }
                    },
                },
                **_ERRORS,
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": {
                    "description": "The alert is not open or not firing, already acknowledged; the silence has "
                    "ended; the rule exists; the channel (or every channel) is not configured.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "413": {"$ref": "#/components/responses/PayloadTooLarge"},
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
            },
        },
    }
}
