"""/api/monitoring/alerts for the alerting engine: rules listed, added, changed, disabled and
deleted (validated, audited with before and after, persisted across restarts); the views;
keys; every bad input with its JSON error; the ``alerts`` metric category."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from app import create_app
from monitoring.alerts.matchers import parse_matcher
from monitoring.clock import ManualClock
from monitoring.settings import ConfigError, Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.test_alerts_support import ALERTS, Host, make_host, receiver  # noqa: F401
from tests.test_notify_api import error_of

DEFAULT_RULES = ["PaymentFailures", "HighErrorRate", "SlowApiResponse", "DatabaseUnavailable", "HighMemoryUsage",
                 "RuleEvaluationFailing"]


# --- rules -----------------------------------------------------------------------------------------


def test_the_default_rules_and_their_thresholds_from_the_environment(make_host: Callable[..., Host]) -> None:
    host = make_host({"PAYMENT_FAILURE_THRESHOLD": "0.02", "ERROR_RATE_THRESHOLD": "0.1",
                      "API_RESPONSE_THRESHOLD": "1500", "MEMORY_USAGE_THRESHOLD": "90"})
    body = host.client.get(f"{ALERTS}?action=rules", headers=METRICS_HEADERS).get_json()
    rules = {name: rule for name, rule in host.rules().items() if rule["origin"] == "default"}
    assert list(rules) == DEFAULT_RULES
    table = {name: (r["figure"], r["comparison"], r["threshold"], r["window"], r["for"], r["keep_firing_for"],
                    r["severity"]) for name, r in rules.items()}
    assert table == {
        "PaymentFailures": ("payment_failure_rate", ">", 0.02, "5m", "0s", "5m", "critical"),
        "HighErrorRate": ("error_rate", ">", 0.1, "5m", "0s", "0s", "high"),
        "SlowApiResponse": ("api_p95_ms", ">", 1500.0, "5m", "3m", "0s", "medium"),
        "DatabaseUnavailable": ("dependency_down", ">", 0.0, "5m", "0s", "0s", "critical"),
        "HighMemoryUsage": ("memory_usage_percent", ">", 90.0, "5m", "10m", "0s", "medium"),
        "RuleEvaluationFailing": ("rule_evaluation_failing", ">", 0.0, "1m", "0s", "0s", "high"),
    }
    assert all(r["origin"] == "default" and r["enabled"] for r in rules.values())
    assert set(body["figures"]) == {"error_rate", "api_p95_ms", "payment_failure_rate", "memory_usage_percent",
                                    "dependency_down", "dependency_response_time", "rule_evaluation_failing"}
    host.evaluate()
    status = host.rules()["PaymentFailures"]["status"]
    assert status == {"state": "inactive", "firing": 0, "pending": 0, "evaluatedAt": "2026-01-01T00:00:00.000Z",
                      "error": None, "samples": 0, "breaching": 0}


def test_rule_changes_persist_across_restarts_and_are_audited(
    make_settings: Callable[..., Any], clock: ManualClock,
) -> None:
    settings = make_settings({"ALERT_GROUP_WAIT": "0"})
    first = create_app(settings, clock=clock)
    client = first.test_client()
    changed = client.post(ALERTS, headers=ADMIN_HEADERS, json={"action": "update_rule", "rule": {
        "name": "HighErrorRate", "threshold": 0.2, "window": "10m", "keep_firing_for": "2m",
        "runbook_url": "https://runbooks.example/errors"}}).get_json()
    assert changed["before"]["threshold"] == 0.05 and changed["rule"]["threshold"] == 0.2
    assert changed["rule"]["origin"] == "default" and changed["warnings"] == []
    added = client.post(ALERTS, headers=ADMIN_HEADERS, json={"action": "add_rule", "rule": {
        "name": "TicketScansStalled", "figure": "tickets.operations", "match": ['operation="scanned"'],
        "comparison": "<", "threshold": 1, "window": "15m", "severity": "low", "labels": {"service": "gates"},
        "summary": "Only {value} scans in {window}"}}).get_json()
    assert added["rule"]["origin"] == "custom" and added["warnings"] == []  # the business category exports it
    typo = client.post(ALERTS, headers=ADMIN_HEADERS, json={"action": "add_rule", "rule": {
        "name": "CartsAbandoned", "figure": "carts.abandoned", "comparison": ">", "threshold": 10,
        "severity": "info", "summary": "{value} carts abandoned"}}).get_json()
    assert typo["warnings"] == ["no category exports carts.abandoned right now; the rule matches nothing until "
                                "one does"]
    client.post(ALERTS, headers=ADMIN_HEADERS, json={"action": "update_rule", "rule": {
        "name": "HighMemoryUsage", "enabled": False}})
    first.extensions["centinela"].shutdown()
    first.extensions["centinela"].store.dispose()

    second = create_app(settings, clock=clock)  # a restart: same store
    rules = {r["name"]: r for r in second.test_client().get(f"{ALERTS}?action=rules",
                                                             headers=METRICS_HEADERS).get_json()["rules"]}
    assert list(rules) == DEFAULT_RULES + ["DatabaseSlow", "CartsAbandoned", "TicketScansStalled"]
    assert (rules["HighErrorRate"]["threshold"], rules["HighErrorRate"]["window"],
            rules["HighErrorRate"]["runbook_url"]) == (0.2, "10m", "https://runbooks.example/errors")
    assert rules["HighMemoryUsage"]["enabled"] is False
    assert rules["TicketScansStalled"]["match"] == ['operation="scanned"']

    entries = second.extensions["centinela"].audit.page(kind="config_change")
    assert [e.action for e in entries] == ["alerts.update_rule", "alerts.add_rule", "alerts.add_rule",
                                           "alerts.update_rule"]
    disable, _, add, change = entries
    assert change.actor.startswith("admin:") and change.detail["rule"] == "HighErrorRate"
    assert change.detail["before"]["threshold"] == 0.05 and change.detail["after"]["threshold"] == 0.2
    assert add.detail["before"] is None and add.detail["after"]["name"] == "TicketScansStalled"
    assert (disable.detail["before"]["enabled"], disable.detail["after"]["enabled"]) == (True, False)
    second.extensions["centinela"].shutdown()
    second.extensions["centinela"].store.dispose()


def test_delete_rule_removes_an_added_rule_and_resets_a_default_one(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "add_rule", "rule": {"name": "Busy", "figure": "requests.count", "comparison": ">",
                                              "threshold": 1000, "severity": "info", "summary": "busy"}})
    host.post({"action": "update_rule", "rule": {"name": "SlowApiResponse", "threshold": 500}})
    removed = host.post({"action": "delete_rule", "name": "Busy"})
    assert removed["before"]["name"] == "Busy" and removed["rule"] is None
    reset = host.post({"action": "delete_rule", "name": "SlowApiResponse"})
    assert reset["before"]["threshold"] == 500 and reset["rule"]["threshold"] == 2000
    assert list(host.rules()) == DEFAULT_RULES + ["DatabaseSlow"]
    assert host.post({"action": "delete_rule", "name": "Busy"}, 404)["error"]["message"] == \
        "no rule named 'Busy'; see action=rules"
    actions = [e.action for e in host.monitoring.audit.page(kind="config_change")]
    assert actions[:2] == ["alerts.delete_rule", "alerts.delete_rule"]


def test_an_added_rule_that_is_deleted_resolves_its_alerts(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "add_rule", "rule": {"name": "AnyTraffic", "figure": "requests.count", "comparison": ">",
                                              "threshold": 0, "severity": "info", "summary": "traffic"}})
    host.requests("/tickets", 2)
    host.flush()
    host.evaluate()
    assert "AnyTraffic" in host.firing()
    host.post({"action": "delete_rule", "name": "AnyTraffic"})
    run = host.evaluate()
    assert run.resolved and host.firing() == {}
    assert host.history()[0]["events"][-2]["detail"] == {"why": "rule deleted"}


VALID_RULE = {"name": "Custom", "figure": "error_rate", "comparison": ">", "threshold": 0.5, "severity": "low",
              "summary": "half fail"}


@pytest.mark.parametrize("changes, field, message", [
    ({"name": "9lives"}, "name", "must be 1 to 64 letters"),
    ({"name": "ManualAlert"}, "name", "ManualAlert is reserved"),
    ({"figure": "Error Rate"}, "figure", "must be a built-in figure"),
    ({"figure": "nodots"}, "figure", "must be a built-in figure"),
    ({"comparison": "=>"}, "comparison", "must be one of: >, >=, <, <=, ==, !="),
    ({"threshold": "0.5"}, "threshold", "must be a number"),
    ({"threshold": True}, "threshold", "must be a number"),
    ({"severity": "urgent"}, "severity", "must be one of: critical, high, medium, low, info"),
    ({"window": "30s"}, "window", "from 1m to 30d"),
    ({"window": "soon"}, "window", "must be a duration such as"),
    ({"for": "2d"}, "for", "from 0 to 1d"),
    ({"keep_firing_for": -1}, "keep_firing_for", "from 0 to 1d"),
    ({"match": 'service="api"'}, "match", "must be a list of up to 20 matchers"),
    ({"match": ["service=api"]}, "match", "item 0: expected a matcher such as"),
    ({"match": ['service=~"("']}, "match", "not a valid regular expression"),
    ({"labels": {"severity": "low"}}, "labels", "not alertname or severity"),
    ({"labels": {"team": 5}}, "labels", "to text of 1 to 200 characters"),
    ({"summary": ""}, "summary", "must be text of 1 to 300 characters"),
    ({"summary": "x" * 301}, "summary", "must be text of 1 to 300 characters"),
    ({"runbook_url": "ftp://runbooks"}, "runbook_url", "must be an http:// or https:// URL"),
    ({"group_by": "service"}, "group_by", "must be a list of up to 10 label names"),
    ({"enabled": "yes"}, "enabled", "must be true or false"),
    ({"treshold": 1}, "treshold", "is not a field of a rule"),
])
def test_add_rule_validation_names_the_bad_field(make_host: Callable[..., Host], changes: dict[str, Any],
                                                 field: str, message: str) -> None:
    host = make_host()
    error = host.post({"action": "add_rule", "rule": {**VALID_RULE, **changes}}, 400)["error"]
    assert error["code"] == "invalid_rule"
    assert error["message"].startswith(f"the rule is not valid: {field} ")
    assert any(p["field"] == field and message in p["message"] for p in error["problems"]), error
    assert host.monitoring.audit.page(kind="config_change") == []


def test_add_rule_lists_every_missing_field(make_host: Callable[..., Host]) -> None:
    error = make_host().post({"action": "add_rule", "rule": {"name": "Empty"}}, 400)["error"]
    assert [p["field"] for p in error["problems"]] == ["figure", "comparison", "threshold", "severity", "summary"]
    assert error["message"] == "the rule is not valid: figure is required (and 4 more)"


def test_rule_bad_requests(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.post({"action": "add_rule", "rule": {**VALID_RULE, "name": "HighErrorRate"}}, 409)["error"]["code"] \
        == "rule_exists"
    assert host.post({"action": "add_rule"}, 400)["error"]["message"].startswith("rule must be an object")
    assert host.post({"action": "add_rule", "rule": []}, 400)["error"]["code"] == "invalid_body"
    assert host.post({"action": "update_rule", "rule": {"threshold": 1}}, 400)["error"]["message"] == \
        "rule.name must name the rule to change"
    assert host.post({"action": "update_rule", "rule": {"name": "Nope", "threshold": 1}}, 404)["error"]["code"] == \
        "not_found"
    error = host.post({"action": "update_rule", "rule": {"name": "HighErrorRate", "threshold": "high"}}, 400)["error"]
    assert error["problems"] == [{"field": "threshold", "message": "must be a number"}]
    assert error["items"] == error["problems"]  # the one name every refusal uses, and the old one
    assert host.post({"action": "delete_rule"}, 400)["error"]["message"] == "name must name the rule to delete"


# --- silences, triggers, maintenance: bad input ---------------------------------------------------------------


@pytest.mark.parametrize("body, field, message", [
    ({"comment": "x", "duration": "1h"}, "matchers", "needs at least one matcher"),
    ({"matchers": [], "comment": "x", "duration": "1h"}, "matchers", "needs at least one matcher"),
    ({"matchers": ["alertname"], "comment": "x", "duration": "1h"}, "matchers", "item 0: expected a matcher"),
    ({"matchers": ['service="api"'], "duration": "1h"}, "comment", "is required"),
    ({"matchers": ['service="api"'], "comment": "   ", "duration": "1h"}, "comment", "is required"),
    ({"matchers": ['service="api"'], "comment": "x"}, "ends_at", "give either ends_at"),
    ({"matchers": ['service="api"'], "comment": "x", "duration": "1h", "ends_at": "2026-01-01T05:00:00Z"},
     "ends_at", "give either ends_at"),
    ({"matchers": ['service="api"'], "comment": "x", "duration": "forever"}, "duration", "must be a duration"),
    ({"matchers": ['service="api"'], "comment": "x", "duration": "91d"}, "duration", "from 1m to 90d"),
    ({"matchers": ['service="api"'], "comment": "x", "ends_at": "yesterday"}, "ends_at", "RFC 3339"),
    ({"matchers": ['service="api"'], "comment": "x", "ends_at": "2025-12-31T00:00:00Z"}, "ends_at",
     "in the future"),
    ({"matchers": ['service="api"'], "comment": "x", "starts_at": 5, "ends_at": 4}, "ends_at", "in the future"),
    ({"matchers": ['service="api"'], "comment": "x", "starts_at": [], "duration": "1h"}, "starts_at", "RFC 3339"),
])
def test_silence_validation(make_host: Callable[..., Host], body: dict[str, Any], field: str, message: str) -> None:
    error = make_host().post({"action": "silence", **body}, 400)["error"]
    assert error["code"] == "invalid_silence"
    assert any(p["field"] == field and message in p["message"] for p in error["problems"]), error


def test_expire_silence_errors(make_host: Callable[..., Host]) -> None:
    host = make_host()
    assert host.post({"action": "expire_silence", "id": 5}, 404)["error"]["message"] == "no silence with that id"
    assert host.post({"action": "expire_silence", "id": "5"}, 400)["error"]["code"] == "invalid_body"
    silence = host.post({"action": "silence", "matchers": ['service="api"'], "comment": "x", "duration": "1h"})
    host.post({"action": "expire_silence", "id": silence["silence"]["id"]})
    assert host.post({"action": "expire_silence", "id": silence["silence"]["id"]}, 409)["error"]["code"] == \
        "invalid_state"
    listed = host.client.get(f"{ALERTS}?action=silences&state=expired", headers=METRICS_HEADERS).get_json()
    assert [s["expiredBy"] for s in listed["silences"]] == [silence["silence"]["createdBy"]]
    assert error_of(host.client.get(f"{ALERTS}?action=silences&state=old", headers=METRICS_HEADERS), 400,
                    "invalid_parameter") == "state must be one of: pending, active, expired"


@pytest.mark.parametrize("body, message", [
    ({}, "severity must be one of: critical, high, medium, low, info"),
    ({"severity": "urgent", "description": "x"}, "severity must be one of"),
    ({"severity": "low"}, "description must be text of 1 to 1000 characters"),
    ({"severity": "low", "description": ""}, "description must be text of 1 to 1000 characters"),
    ({"severity": "low", "description": 42}, "description must be text"),
    ({"severity": "low", "description": "x" * 1001}, "description must be text"),
    ({"severity": "low", "description": "x", "service": "Check Out"}, "service must be a name"),
    ({"severity": "low", "description": "x", "summary": ["x"]}, "summary must be text of 0 to 300"),
    ({"severity": "low", "description": "x", "runbook_url": "runbooks/x"}, "runbook_url must be an http"),
    ({"severity": "low", "description": "x", "descripton": "typo"},
     "unknown field 'descripton' for action trigger; allowed: action, severity, description, service, summary, "
     "runbook_url"),
])
def test_trigger_validation(make_host: Callable[..., Host], body: dict[str, Any], message: str) -> None:
    error = make_host().post({"action": "trigger", **body}, 400)["error"]
    assert error["code"] == "invalid_body" and message in error["message"]


@pytest.mark.parametrize("body, code, message", [
    ({}, "invalid_body", "window must be an object"),
    ({"window": "tonight"}, "invalid_body", "window must be an object"),
    ({"window": {"type": "sometimes"}}, "invalid_window", "type must be one of: one_off, weekly, cron"),
    ({"window": {"type": "one_off", "start": "2026-01-01T02:00:00Z", "end": "2026-01-01T01:00:00Z"}},
     "invalid_window", "end must be after start"),
    ({"window": {"type": "weekly", "days": ["someday"], "start_time": "25:00", "duration": "2h"}},
     "invalid_window", "days must be a list of week days"),
    ({"window": {"type": "cron", "cron": "* * * * *", "duration": "1h"}}, "invalid_window",
     "may start at most once an hour"),
])
def test_maintenance_validation(make_host: Callable[..., Host], body: dict[str, Any], code: str,
                                message: str) -> None:
    error = make_host().post({"action": "maintenance", **body}, 400)["error"]
    assert error["code"] == code and message in error["message"]


def test_inhibition_validation(make_host: Callable[..., Host]) -> None:
    host = make_host()
    for inhibitions, field in (
        ("none", "inhibitions"),
        ([{"source": [], "target": ['alertname="X"']}], "inhibitions[0].source"),
        ([{"source": ['alertname="X"'], "target": ['alertname="Y"'], "equal": "host"}], "inhibitions[0].equal"),
        ([{"source": ['alertname="X"'], "target": ['alertname="Y"'], "when": "always"}], "inhibitions[0].when"),
        (["x"], "inhibitions[0]"),
    ):
        error = host.post({"action": "update_inhibitions", "inhibitions": inhibitions}, 400)["error"]
        assert error["code"] == "invalid_inhibitions" and error["problems"][0]["field"] == field
    assert host.post({"action": "update_inhibitions", "inhibitions": []})["inhibitions"] == []


# --- keys, actions, bodies ----------------------------------------------------------------------------------------


GET_VIEWS = ["active", "configuration", "history", "maintenance", "rules", "silences"]
POST_ACTIONS = ["acknowledge", "add_rule", "delete_maintenance", "delete_rule", "expire_silence", "maintenance",
                "resolve", "silence", "test", "trigger", "update_inhibitions", "update_rule"]


@pytest.mark.parametrize("view", GET_VIEWS)
def test_views_need_a_key_and_accept_the_read_key(client: Any, view: str) -> None:
    error_of(client.get(f"{ALERTS}?action={view}"), 401, "unauthorized")
    error_of(client.get(f"{ALERTS}?action={view}", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert client.get(f"{ALERTS}?action={view}", headers=METRICS_HEADERS).status_code == 200
    assert client.get(f"{ALERTS}?action={view}", headers=ADMIN_HEADERS).status_code == 200


@pytest.mark.parametrize("action", POST_ACTIONS)
def test_actions_need_the_admin_key(client: Any, monitoring: Any, action: str) -> None:
    error_of(client.post(ALERTS, json={"action": action}), 401, "unauthorized")
    error_of(client.post(ALERTS, json={"action": action}, headers=METRICS_HEADERS), 403, "forbidden")
    refusals = monitoring.audit.page(kind="access_denied")
    assert [e.detail["reason"] for e in refusals] == ["insufficient_role", "missing_key"]


def test_unknown_actions_list_the_valid_ones(client: Any) -> None:
    message = error_of(client.get(f"{ALERTS}?action=firing", headers=METRICS_HEADERS), 400, "invalid_action")
    assert message == "unknown action 'firing'; valid actions: " + ", ".join(sorted(GET_VIEWS + ["deliveries"]))
    message = error_of(client.post(ALERTS, json={"action": "page"}, headers=ADMIN_HEADERS), 400, "invalid_action")
    assert message == "unknown action 'page'; valid actions: " + ", ".join(POST_ACTIONS)


def test_bad_bodies(client: Any) -> None:
    error_of(client.post(ALERTS, data='{"action": "trigger",', headers={**ADMIN_HEADERS,
                                                                         "Content-Type": "application/json"}),
             400, "invalid_json")
    error_of(client.post(ALERTS, json=["trigger"], headers=ADMIN_HEADERS), 400, "invalid_body")
    error_of(client.post(ALERTS, data="action=trigger", headers=ADMIN_HEADERS), 415)
    huge = json.dumps({"action": "trigger", "severity": "low", "description": "x" * (1024 * 1024)})
    error_of(client.post(ALERTS, data=huge, headers={**ADMIN_HEADERS, "Content-Type": "application/json"}), 413)


@pytest.mark.parametrize("query, message", [
    ("action=active&state=resolved", "state must be one of: pending, firing"),
    ("action=active&severity=urgent", "severity must be one of: critical, high, medium, low, info"),
    ("action=history&limit=0", "limit must be a whole number from 1 to 500"),
    ("action=history&limit=x", "limit must be a whole number from 1 to 500"),
    ("action=history&before=-1", "before must be a whole number"),
    ("action=history&fingerprint=abc", "fingerprint must be 16 hexadecimal digits"),
    ("action=history&since=yesterday", "since must be an RFC 3339 timestamp"),
    ("action=history&state=gone", "state must be one of: pending, firing, resolved"),
])
def test_view_parameters(client: Any, query: str, message: str) -> None:
    assert message in error_of(client.get(f"{ALERTS}?{query}", headers=METRICS_HEADERS), 400, "invalid_parameter")


# --- views -----------------------------------------------------------------------------------------------------------


def test_history_pages_newest_first_with_events(make_host: Callable[..., Host]) -> None:
    host = make_host()
    for i in range(3):
        alert = host.post({"action": "trigger", "severity": "low", "description": f"alert {i}"})["alert"]
        host.post({"action": "resolve", "id": alert["id"]})
    first = host.client.get(f"{ALERTS}?action=history&limit=2", headers=METRICS_HEADERS).get_json()
    assert [a["summary"] for a in first["alerts"]] == ["alert 2", "alert 1"]
    assert first["alerts"][0]["resolution"].startswith("Resolved by admin:")
    # Sent with the trigger (no group wait here), so its resolve is sent too.
    assert [e["kind"] for e in first["alerts"][0]["events"]] == ["firing", "notified", "resolved", "notified"]
    assert first["alerts"][0]["events"][0]["actor"].startswith("admin:")
    second = host.client.get(f"{ALERTS}?action=history&limit=2&before={first['next']['before']}",
                             headers=METRICS_HEADERS).get_json()
    assert [a["summary"] for a in second["alerts"]] == ["alert 0"] and second["next"] is None


def test_configuration_shows_rules_inhibitions_and_the_grouping_policy(
    make_settings: Callable[..., Any], clock: ManualClock,
) -> None:
    app = create_app(make_settings({"ALERT_REPEAT_INTERVAL": "2h", "ALERT_GROUP_WAIT": "0",
                                    "ESCALATION_WEBHOOK_URL": "http://127.0.0.1:9/hook"}), clock=clock)
    body = app.test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()
    app.extensions["centinela"].store.dispose()
    assert list(body) == ["thresholds", "severityMatrix", "channels", "routing", "delivery", "alerting", "rules",
                          "inhibitions"]
    alerting = body["alerting"]
    assert (alerting["evaluationIntervalSeconds"], alerting["escalationChannel"]) == (15.0, "escalation")
    assert alerting["bySeverity"]["critical"] == {"groupWaitSeconds": 0.0, "groupIntervalSeconds": 0.0,
                                                  "repeatIntervalSeconds": 7200.0, "escalateAfterSeconds": 0}
    assert alerting["bySeverity"]["medium"] == {"groupWaitSeconds": 0.0, "groupIntervalSeconds": 300.0,
                                                "repeatIntervalSeconds": 7200.0, "escalateAfterSeconds": 7200}
    assert [r["name"] for r in body["rules"]] == DEFAULT_RULES + ["DatabaseSlow"]
    assert body["rules"][-1]["origin"] == "derived"
    assert body["inhibitions"] == [{"source": ['alertname="DatabaseUnavailable"'],
                                    "target": ['alertname=~"SlowApiResponse|HighErrorRate"'], "equal": []}]
    assert "127.0.0.1:9/hook" not in json.dumps(body)  # channel URLs stay masked


def test_the_alerts_metric_category_includes_the_delivery_figures(make_host: Callable[..., Host]) -> None:
    host = make_host({"NOTIFY_GIVE_UP_AFTER": "60"})
    host.post({"action": "trigger", "severity": "high", "description": "queue stuck"})
    host.post({"action": "trigger", "severity": "low", "description": "disk", "service": "ops"})
    host.evaluate()
    host.deliver()  # nothing listens at 127.0.0.1:9: retried
    host.advance(61)
    host.deliver()  # past the give-up horizon
    body = host.client.get("/api/monitoring/metrics?category=alerts", headers=METRICS_HEADERS).get_json()
    section = body["alerts"]
    figures = section["alerts"]
    assert (figures["firing"], figures["firingBySeverity"]["high"], figures["firedInWindow"]) == (2, 1, 2)
    assert section["notifications"]["byStatus"]["gave_up"] >= 1
    prometheus = host.client.get("/api/monitoring/metrics?category=alerts&format=prometheus",
                                 headers=METRICS_HEADERS).get_data(as_text=True)
    assert 'centinela_alerts{severity="high",state="firing"} 1.0' in prometheus
    assert 'centinela_notification_deliveries{status="gave_up"}' in prometheus


def test_evaluation_is_a_leader_only_global_job(make_host: Callable[..., Host]) -> None:
    host = make_host({"ALERT_EVALUATION_INTERVAL": "7"})
    scheduler = host.monitoring.scheduler
    job = scheduler.jobs["alert_evaluation"]
    assert (job.scope, job.interval) == ("global", 7.0)
    host.payments(0, 3)
    assert scheduler.run_global("alert_evaluation") is False  # not the leader: nothing is evaluated
    assert host.active() == []
    assert scheduler.lease.try_acquire()
    assert scheduler.run_global("alert_evaluation") is True
    assert [a["name"] for a in host.active()] == ["PaymentFailures"]


def test_openapi_documents_every_alerts_action(client: Any) -> None:
    document = client.get("/api/openapi.json").get_json()
    operations = document["paths"]["/api/monitoring/alerts"]
    action = next(p for p in operations["get"]["parameters"] if p["name"] == "action")
    assert action["schema"]["enum"] == sorted(GET_VIEWS + ["deliveries"])
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
    union = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]  # one body per action
    assert union["discriminator"]["propertyName"] == "action"
    assert sorted(union["discriminator"]["mapping"]) == POST_ACTIONS
    assert len(union["oneOf"]) == len(POST_ACTIONS)
    assert {"404", "409", "401", "403", "400"} <= set(operations["post"]["responses"])


@pytest.mark.parametrize("name, value, expected", [
    ("ALERT_GROUP_WAIT", "soon", "expected a duration such as 0, 30s, 5m, 4h or 1d"),
    ("ALERT_GROUP_WAIT", "2h", "from 0 to 1h"),
    ("ALERT_REPEAT_INTERVAL", "10s", "from 1m to 30d"),
    ("ALERT_ESCALATION_AFTER", "high=15m", "expected a duration such as 0, 30s, 5m, 4h or 1d; or a JSON object"),
    ("ALERT_ESCALATION_AFTER", '{"high": 15m}', 'or a JSON object such as {"critical": "0", "high": "30s"}'),
    ("ALERT_GROUP_INTERVAL", '{"high": "2d"}', "high: expected a duration such as 0, 30s, 5m, 4h or 1d, from 0 to 1d"),
    ("ALERT_ERROR_RATE_WINDOW", "10s", "from 1m to 30d"),
    ("ALERT_ESCALATION_AFTER", '{"urgent": "5m"}', "unknown severity 'urgent'"),
    ("ALERT_ESCALATION_AFTER", '{"high": "8d"}', "high: expected a duration such as 0, 30s, 5m, 4h or 1d, from 0 to 7d"),
    ("ALERT_DATABASE_CHECKS", "Orders DB", "expected comma-separated health check names"),
    ("ALERT_DATABASE_CHECKS", " , ", "expected comma-separated health check names"),
])
def test_bad_alerting_settings_stop_start_up(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}=") and expected in str(caught.value)


def test_alerting_settings_parse() -> None:
    settings = Settings.from_env({"ALERT_GROUP_WAIT": "0", "ALERT_REPEAT_INTERVAL": "90m",
                                  "ALERT_ESCALATION_AFTER": '{"low": "none", "high": 600}',
                                  "ALERT_DATABASE_CHECKS": "database, orders-db,database"})
    every = ("critical", "high", "medium", "low", "info")
    assert settings.alert_group_wait == dict.fromkeys(every, 0.0)  # one duration: every severity
    assert settings.alert_repeat_interval == dict.fromkeys(every, 5400.0)
    assert settings.alert_escalation_after == {"low": None, "high": 600.0}  # a map: the severities it names
    assert Settings.from_env({"ALERT_ESCALATION_AFTER": "none"}).alert_escalation_after == dict.fromkeys(every)
    assert settings.alert_database_checks == ("database", "orders-db")


@pytest.mark.parametrize("matcher, labels, matches", [
    ('service="api"', {"service": "api"}, True),
    ('service="api"', {"service": "api-gw"}, False),
    ('service!="api"', {}, True),  # a missing label reads as empty
    ('service=""', {}, True),
    ('alertname=~"SlowApiResponse|HighErrorRate"', {"alertname": "HighErrorRate"}, True),
    ('alertname=~"High"', {"alertname": "HighErrorRate"}, False),  # anchored at both ends
    ('host!~"canary-.*"', {"host": "canary-2"}, False),
    ('host!~"canary-.*"', {"host": "web-1"}, True),
    ('summary="say \\"hi\\""', {"summary": 'say "hi"'}, True),
])
def test_matchers_follow_alertmanager(matcher: str, labels: dict[str, str], matches: bool) -> None:
    parsed = parse_matcher(matcher)
    assert parsed.matches(labels) is matches
    assert parse_matcher(str(parsed)) == parsed  # shown as it is written


def test_maintenance_changes_are_audited(client: Any) -> None:
    from tests.conftest import ADMIN_HEADERS

    window = {"type": "one_off", "start": "2026-01-01T02:00:00Z", "end": "2026-01-01T03:00:00Z"}
    created = client.post("/api/monitoring/alerts", json={"action": "maintenance", "window": window},
                          headers=ADMIN_HEADERS)
    assert created.status_code == 200, created.get_json()
    window_id = created.get_json()["window"]["id"]
    deleted = client.post("/api/monitoring/alerts", json={"action": "delete_maintenance", "id": window_id},
                          headers=ADMIN_HEADERS)
    assert deleted.status_code == 200, deleted.get_json()
    entries = client.get("/api/monitoring/audit?kind=admin_action", headers=ADMIN_HEADERS).get_json()["entries"]
    assert [(e["action"], e["detail"]["window"]["id"]) for e in entries[:2]] == [
        ("alerts.delete_maintenance", window_id), ("alerts.maintenance", window_id)]
