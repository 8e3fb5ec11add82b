"""What the engine sends, and when, with the injected clock: grouping and repeats, inhibition,
silences and maintenance windows (and the send when they end), acknowledgement, escalation
after each severity's delay, manual alerts; what reaches a real receiver."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY
from tests.support.receiver import RecordingHTTPServer, SwitchableTCPServer
from tests.test_alerts_support import Host, make_host, names, receiver  # noqa: F401

MINUTE = 60.0
HOUR = 3600.0


def trigger(host: Host, severity: str, description: str, service: str = "checkout") -> dict[str, Any]:
    return host.post({"action": "trigger", "severity": severity, "description": description, "service": service})


# --- grouping and repeats ----------------------------------------------------------------------------


def test_alerts_of_one_group_within_the_group_wait_go_as_one_notification(make_host: Callable[..., Host], store_url: str) -> None:
    host = make_host({"ALERT_GROUP_WAIT": "30s", "DATABASE_URL": store_url})
    first = trigger(host, "medium", "Refunds are slow")
    assert first["created"] and first["sendsAfter"] == "2026-01-01T00:00:30.000Z"
    host.evaluate()
    assert host.notifications() == []  # waiting for the rest of its group
    host.advance(20)
    trigger(host, "high", "Checkout queue backing up")  # same service, within the wait
    trigger(host, "medium", "Newsletter bounces", service="mailing")  # another group
    host.evaluate()
    assert host.notifications() == []
    host.advance(10)  # the first alert's wait is over: its whole group goes now
    host.evaluate()
    (grouped,) = host.notifications("firing")
    assert names(grouped) == ["ManualAlert", "ManualAlert"]
    assert dict(grouped.group_labels) == {"service": "checkout"} and grouped.severity == "high"
    assert sorted(a.annotations["summary"] for a in grouped.alerts) == ["Checkout queue backing up",
                                                                        "Refunds are slow"]
    host.advance(20)  # the mailing alert's wait is over
    host.evaluate()
    grouped_again, mailing = host.notifications("firing")
    assert dict(mailing.group_labels) == {"service": "mailing"} and len(mailing.alerts) == 1


def test_rule_alerts_are_grouped_by_service(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "update_rule", "rule": {"name": "SlowApiResponse", "for": "0"}})
    host.requests("/checkout", 10)
    host.record_durations("/tickets", 3.0, 10)
    host.flush()
    host.evaluate()
    (firing,) = [n for n in host.notifications("firing")]
    assert names(firing) == ["HighErrorRate", "SlowApiResponse"] and dict(firing.group_labels) == {"service": "api"}


def test_an_unacknowledged_firing_alert_is_sent_again_after_the_repeat_interval(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"ALERT_REPEAT_INTERVAL": "1h", "ALERT_ESCALATION_AFTER": '{"low": "none"}'})
    alert = trigger(host, "low", "Disk filling up")["alert"]
    host.evaluate()
    assert len(host.notifications("firing")) == 1
    host.advance(HOUR - 1)
    host.evaluate()
    assert len(host.notifications("firing")) == 1
    host.advance(1)
    host.evaluate()
    first, repeat = host.notifications("firing")
    assert first.id == f"{alert['fingerprint']}:firing:{alert['id']}.1"
    assert repeat.id == f"{alert['fingerprint']}:firing:{alert['id']}.2"
    host.post({"action": "acknowledge", "id": alert["id"], "comment": "on it"})
    host.advance(5 * HOUR)
    host.evaluate()
    assert len(host.notifications("firing")) == 2  # acknowledged: no more repeats
    assert host.active()[0]["notifications"]["sent"] == 2


# --- inhibition -------------------------------------------------------------------------------------------


def _database_down_host(make_host: Callable[..., Host], port: int, **env: str) -> Host:
    return make_host({
        "HEALTH_CHECKS": json.dumps([{"name": "orders-db", "type": "tcp", "host": "127.0.0.1", "port": port,
                                      "timeout": 1, "critical": True}]),
        "ALERT_DATABASE_CHECKS": "orders-db",
        **env,
    })


def test_database_unavailable_inhibits_the_error_rate_it_explains(make_host: Callable[..., Host]) -> None:
    with SwitchableTCPServer() as orders_db:
        host = _database_down_host(make_host, orders_db.port)
        orders_db.refuse()
        host.monitoring.health.run_round()
        host.requests("/checkout", 10)  # the checkouts fail because the database is down
        host.flush()
        host.evaluate()
        firing = host.firing()
        assert set(firing) == {"DatabaseUnavailable", "HighErrorRate"}
        assert firing["HighErrorRate"]["muted"] == {"by": "inhibition", "since": "2026-01-01T00:00:00.000Z",
                                                    "source": firing["DatabaseUnavailable"]["fingerprint"]}
        assert [names(n) for n in host.notifications("firing")] == [["DatabaseUnavailable"]]
        escalated = host.notifications("escalated", channel="escalation")
        assert [names(n) for n in escalated] == [["DatabaseUnavailable"]]

        orders_db.resume()  # the database is back, the error rate is still high
        host.advance(MINUTE)
        host.monitoring.health.run_round()
        host.requests("/checkout", 10)
        host.flush()
        host.evaluate()
        assert set(host.firing()) == {"HighErrorRate"} and host.firing()["HighErrorRate"]["muted"] is None
        assert [names(n) for n in host.notifications("firing")] == [["DatabaseUnavailable"], ["HighErrorRate"]]


def test_inhibition_rules_are_configurable_and_audited(make_host: Callable[..., Host]) -> None:
    with SwitchableTCPServer() as orders_db:
        host = _database_down_host(make_host, orders_db.port)
        answer = host.post({"action": "update_inhibitions", "inhibitions": [
            {"source": ['alertname="DatabaseUnavailable"'], "target": ['alertname="PaymentFailures"']}]})
        assert answer["before"][0]["target"] == ['alertname=~"SlowApiResponse|HighErrorRate"']
        orders_db.refuse()
        host.monitoring.health.run_round()
        host.requests("/checkout", 10)
        host.payments(0, 5)
        host.flush()
        host.evaluate()
        firing = host.firing()
        assert firing["HighErrorRate"]["muted"] is None
        assert firing["PaymentFailures"]["muted"]["by"] == "inhibition"
        (entry,) = host.monitoring.audit.page(kind="config_change")
        assert entry.action == "alerts.update_inhibitions" and entry.detail["after"][0]["equal"] == []
        configuration = host.client.get("/api/monitoring/alerts?action=configuration",
                                        headers={"X-API-Key": ADMIN_KEY}).get_json()
        assert configuration["inhibitions"] == answer["inhibitions"]


def test_inhibition_with_equal_labels_needs_them_equal(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "update_inhibitions", "inhibitions": [
        {"source": ['severity="critical"'], "target": ['severity="low"'], "equal": ["service"]}]})
    trigger(host, "critical", "Checkout down", service="checkout")
    trigger(host, "low", "Checkout slow", service="checkout")
    trigger(host, "low", "Mailing slow", service="mailing")
    host.evaluate()
    muted = {a["summary"]: a["muted"] for a in host.active()}
    assert muted["Checkout slow"]["by"] == "inhibition"
    assert muted["Mailing slow"] is None and muted["Checkout down"] is None


# --- silences -----------------------------------------------------------------------------------------------


def test_a_silenced_alert_is_tracked_and_shown_but_not_sent_until_the_silence_ends(
    make_host: Callable[..., Host], store_url: str,
) -> None:
    host = make_host({"DATABASE_URL": store_url})  # SQLite and PostgreSQL
    created = host.post({"action": "silence", "matchers": ['alertname="PaymentFailures"'], "duration": "1h",
                         "comment": "Stripe incident, tracked in their status page"})["silence"]
    assert created["state"] == "active" and created["createdBy"].startswith("admin:")
    host.payments(0, 5)
    host.evaluate()
    alert = host.firing()["PaymentFailures"]
    assert alert["muted"]["by"] == "silence" and alert["muted"]["id"] == created["id"]
    assert host.notifications() == [] and host.notifications(channel="escalation") == []  # nor escalated
    silences = host.client.get("/api/monitoring/alerts?action=silences",
                               headers={"X-API-Key": ADMIN_KEY}).get_json()["silences"]
    assert silences[0]["matching"] == [alert["fingerprint"]]

    host.advance(HOUR)  # the silence ends; the failures keep coming
    host.payments(0, 5)
    host.evaluate()
    (sent,) = host.notifications("firing")
    assert names(sent) == ["PaymentFailures"] and host.firing()["PaymentFailures"]["muted"] is None
    assert [e["kind"] for e in host.history()[0]["events"]][-4:] == ["muted", "unmuted", "notified", "notified"]


def test_expiring_a_silence_sends_a_still_firing_alert_at_once_even_after_it_was_sent(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"ALERT_GROUP_WAIT": "5m"})
    trigger(host, "medium", "Ticket scanner offline", service="gates")
    host.advance(5 * MINUTE)
    host.evaluate()
    assert len(host.notifications("firing")) == 1
    silence = host.post({"action": "silence", "matchers": ['service="gates"'], "duration": "2h",
                         "comment": "gate crew rebooting the scanners"})["silence"]
    host.advance(MINUTE)
    host.evaluate()
    assert host.active()[0]["muted"]["by"] == "silence"
    host.post({"action": "expire_silence", "id": silence["id"]})
    host.advance(1)
    host.evaluate()  # no group wait, no repeat interval: at once
    assert len(host.notifications("firing")) == 2
    assert [e.action for e in host.monitoring.audit.page(kind="admin_action")][:3] == [
        "alerts.expire_silence", "alerts.silence", "alerts.trigger"]


def test_a_silence_that_starts_later_does_not_mute_now(make_host: Callable[..., Host]) -> None:
    host = make_host()
    pending = host.post({"action": "silence", "matchers": ['service="gates"'],
                         "starts_at": "2026-01-01T01:00:00Z", "ends_at": "2026-01-01T02:00:00Z",
                         "comment": "planned"})["silence"]
    assert pending["state"] == "pending"
    trigger(host, "low", "Gate 3 slow", service="gates")
    host.evaluate()
    assert host.active()[0]["muted"] is None and len(host.notifications("firing")) == 1


# --- maintenance windows --------------------------------------------------------------------------------------


def test_maintenance_mutes_the_services_it_covers_and_sends_at_its_end(make_host: Callable[..., Host]) -> None:
    host = make_host()
    window = host.post({"action": "maintenance", "window": {
        "type": "one_off", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z",
        "services": ["payments"], "reason": "Stripe key rotation"}})["window"]
    host.payments(0, 5)
    host.requests("/checkout", 10)
    host.flush()
    host.evaluate()
    firing = host.firing()
    assert firing["PaymentFailures"]["muted"]["by"] == "maintenance"
    assert firing["PaymentFailures"]["muted"]["id"] == window["id"]
    assert firing["HighErrorRate"]["muted"] is None  # service api: not covered
    assert [names(n) for n in host.notifications("firing")] == [["HighErrorRate"]]
    view = host.client.get("/api/monitoring/alerts?action=maintenance", headers={"X-API-Key": ADMIN_KEY}).get_json()
    assert view["active"][0]["window"] == window["id"] and view["windows"][0]["reason"] == "Stripe key rotation"

    host.advance(HOUR)
    host.payments(0, 5)
    host.evaluate()
    assert [names(n) for n in host.notifications("firing")] == [["HighErrorRate"], ["PaymentFailures"]]


def test_a_weekly_window_for_the_whole_service_mutes_everything(make_host: Callable[..., Host]) -> None:
    host = make_host()
    # 2026-01-01 is a Thursday; 01:00 in Madrid is midnight UTC.
    host.post({"action": "maintenance", "window": {"type": "weekly", "days": ["thu"], "start_time": "01:00",
                                                   "duration": "2h", "timezone": "Europe/Madrid"}})
    trigger(host, "critical", "Everything is on fire")
    host.evaluate()
    assert host.active()[0]["muted"]["by"] == "maintenance" and host.notifications() == []
    host.advance(2 * HOUR)
    host.evaluate()
    assert len(host.notifications("firing")) == 1


def test_deleting_a_maintenance_window_ends_the_mute(make_host: Callable[..., Host]) -> None:
    host = make_host()
    window = host.post({"action": "maintenance", "window": {"type": "one_off", "start": "2026-01-01T00:00:00Z",
                                                            "end": "2026-01-02T00:00:00Z"}})["window"]
    trigger(host, "high", "Upgrade went wrong")
    host.evaluate()
    assert host.notifications() == []
    deleted = host.post({"action": "delete_maintenance", "id": window["id"]})
    assert deleted["deleted"]["id"] == window["id"]
    host.evaluate()
    assert len(host.notifications("firing")) == 1
    assert host.post({"action": "delete_maintenance", "id": window["id"]}, 404)["error"]["code"] == "not_found"


# --- acknowledgement ------------------------------------------------------------------------------------------


def test_acknowledgement_stops_escalation_and_clears_on_resolve(make_host: Callable[..., Host], store_url: str) -> None:
    host = make_host({"DATABASE_URL": store_url})  # SQLite and PostgreSQL
    alert = trigger(host, "high", "Payouts delayed")["alert"]
    host.evaluate()
    host.advance(10 * MINUTE)
    acked = host.post({"action": "acknowledge", "fingerprint": alert["fingerprint"],
                       "comment": "looking at the payout queue"})["alert"]
    assert acked["acknowledged"]["by"].startswith("admin:") and acked["acknowledged"]["comment"] == \
        "looking at the payout queue"
    assert acked["acknowledged"]["at"] == "2026-01-01T00:10:00.000Z" and acked["escalation"]["dueAt"] is None
    host.advance(HOUR)  # well past the 30-minute escalation of a high alert
    host.evaluate()
    assert host.notifications(channel="escalation") == [] and host.active()[0]["escalation"]["escalatedAt"] is None
    assert [n.event for n in host.notifications()] == ["firing", "acknowledged"]

    resolved = host.post({"action": "resolve", "id": alert["id"], "comment": "payouts caught up"})["alert"]
    assert resolved["state"] == "resolved" and resolved["resolvedBy"].startswith("admin:")
    assert [n.event for n in host.notifications()] == ["firing", "acknowledged", "resolved"]
    # It fires again: a new, unacknowledged episode that escalates when its delay passes.
    again = trigger(host, "high", "Payouts delayed")
    assert again["created"] and again["alert"]["acknowledged"] is None and again["alert"]["id"] != alert["id"]
    host.evaluate()
    host.advance(30 * MINUTE)
    host.evaluate()
    (escalated,) = host.notifications("escalated", channel="escalation")
    assert escalated.alerts[0].fingerprint == alert["fingerprint"]
    assert [e.action for e in host.monitoring.audit.page(kind="admin_action")][:4] == [
        "alerts.trigger", "alerts.resolve", "alerts.acknowledge", "alerts.trigger"]


def test_acknowledging_a_paged_alert_sends_pagerduty_acknowledge(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host({
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "ESCALATION_WEBHOOK_URL": receiver.url + "/v2/enqueue",
        "ESCALATION_WEBHOOK_KIND": "pagerduty",
        "PAGERDUTY_ROUTING_KEY": "PDroutingKey0123456789abcdefWXYZ",
    })
    host.payments(0, 5)
    host.evaluate()  # critical: escalated with its first notification
    alert = host.firing()["PaymentFailures"]
    assert alert["escalation"]["escalatedAt"] == "2026-01-01T00:00:00.000Z"
    host.post({"action": "acknowledge", "id": alert["id"], "comment": "Stripe is degraded; failing over"})
    host.deliver()
    paged = [r.json() for r in receiver.requests if r.path == "/v2/enqueue"]
    assert [(p["event_action"], p["dedup_key"]) for p in paged] == [
        ("trigger", alert["fingerprint"]), ("acknowledge", alert["fingerprint"])]
    webhook = [r.json() for r in receiver.requests if r.path == "/hook"]
    assert [w["event"] for w in webhook] == ["firing", "acknowledged"]


@pytest.mark.parametrize("body, status, code, message", [
    ({"id": 999}, 404, "not_found", "no open alert with that id or fingerprint"),
    ({"fingerprint": "0123456789abcdef"}, 404, "not_found", "no open alert"),
    ({}, 400, "invalid_body", "name the alert with id or fingerprint"),
    ({"id": 1, "fingerprint": "0123456789abcdef"}, 400, "invalid_body", "name the alert with id or fingerprint"),
    ({"id": "1"}, 400, "invalid_body", "id must be a whole number"),
    ({"id": True}, 400, "invalid_body", "id must be a whole number"),
    ({"fingerprint": "XYZ"}, 400, "invalid_body", "fingerprint must be 16 hexadecimal digits"),
    ({"id": 1, "comment": 5}, 400, "invalid_body", "comment must be text of 0 to 500 characters"),
    ({"id": 1, "comment": "x" * 501}, 400, "invalid_body", "comment must be text"),
])
@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_bad_requests(make_host: Callable[..., Host], action: str, body: dict[str, Any],
                                              status: int, code: str, message: str) -> None:
    host = make_host()
    error = host.post({"action": action, **body}, status)["error"]
    assert error["code"] == code and message in error["message"]


def test_acknowledge_and_resolve_state_conflicts(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "update_rule", "rule": {"name": "PaymentFailures", "for": "5m"}})
    host.payments(0, 5)
    host.evaluate()
    (pending,) = host.active()
    error = host.post({"action": "acknowledge", "id": pending["id"]}, 409)["error"]
    assert error["code"] == "invalid_state" and "pending" in error["message"]
    alert = trigger(host, "low", "Something")["alert"]
    host.post({"action": "acknowledge", "id": alert["id"]})
    assert "already acknowledged" in host.post({"action": "acknowledge", "id": alert["id"]}, 409)["error"]["message"]
    host.post({"action": "resolve", "id": alert["id"]})
    assert "already resolved" in host.post({"action": "resolve", "id": alert["id"]}, 409)["error"]["message"]
    # A pending alert may be resolved by hand (nothing was sent, so nothing is said).
    assert host.post({"action": "resolve", "id": pending["id"]})["alert"]["state"] == "resolved"
    assert [n.alerts[0].fingerprint for n in host.notifications("resolved")] == [alert["fingerprint"]]


# --- escalation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity, delay", [
    ("critical", 0.0), ("high", 30 * MINUTE), ("medium", 2 * HOUR), ("low", 24 * HOUR), ("info", None),
])
def test_escalation_after_each_severitys_delay(make_host: Callable[..., Host], severity: str,
                                               delay: float | None) -> None:
    host = make_host({"ALERT_REPEAT_INTERVAL": "30d"})
    alert = trigger(host, severity, f"{severity} trouble")["alert"]
    host.evaluate()
    if delay is None:
        host.advance(30 * 86400)
        host.evaluate()
        assert host.notifications(channel="escalation") == []
        assert host.active()[0]["escalation"] == {"afterSeconds": None, "dueAt": None, "escalatedAt": None}
        return
    if delay:
        assert host.active()[0]["escalation"]["dueAt"] is not None
        host.advance(delay - 1)
        host.evaluate()
        assert host.notifications(channel="escalation") == []
        host.advance(1)
        host.evaluate()
    (escalated,) = host.notifications("escalated", channel="escalation")
    assert escalated.alerts[0].fingerprint == alert["fingerprint"] and escalated.escalated
    (shown,) = host.active()
    assert shown["escalation"]["escalatedAt"] is not None and shown["escalation"]["afterSeconds"] == delay
    assert [e["detail"]["event"] for e in host.history()[0]["events"] if e["kind"] == "notified"] == [
        "firing", "escalated"]
    host.advance(7 * 86400)
    host.evaluate()
    assert len(host.notifications("escalated", channel="escalation")) == 1  # once per episode
    # Resolution reaches the escalation channel too, since it was escalated.
    host.post({"action": "resolve", "id": alert["id"]})
    assert [n.event for n in host.notifications(channel="escalation")] == ["escalated", "resolved"]


def test_the_escalation_matrix_is_configurable(make_host: Callable[..., Host]) -> None:
    host = make_host({"ALERT_ESCALATION_AFTER": '{"high": "5m", "critical": "none"}'})
    matrix = host.client.get("/api/monitoring/alerts?action=configuration",
                             headers={"X-API-Key": ADMIN_KEY}).get_json()["severityMatrix"]
    assert [(r["severity"], r["escalation"], r["escalateAfterSeconds"]) for r in matrix] == [
        ("critical", "None", None), ("high", "5 min", 300.0), ("medium", "2 hours", 7200),
        ("low", "Next day", 86400), ("info", "None", None)]
    trigger(host, "high", "Queue stuck")
    trigger(host, "critical", "Everything down", service="core")
    host.evaluate()
    host.advance(5 * MINUTE)
    host.evaluate()
    (escalated,) = host.notifications("escalated", channel="escalation")
    assert escalated.alerts[0].severity == "high"


# --- manual alerts ------------------------------------------------------------------------------------------------


def test_a_manual_alert_goes_through_routing_and_resolves_by_hand(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "SLACK_WEBHOOK_URL": receiver.url + "/slack",
                      "NOTIFY_ROUTES": '{"info": ["slack"]}', "ALERT_REPEAT_INTERVAL": "7d"})
    answer = trigger(host, "info", "Manual test alert", service="festival")
    assert answer["alert"]["state"] == "firing" and answer["alert"]["rule"] is None
    assert trigger(host, "info", "Manual test alert", service="festival")["created"] is False  # still open
    host.evaluate()
    host.deliver()
    assert [r.path for r in receiver.requests] == ["/slack"]  # info goes to slack only, by the routes
    text = receiver.requests[0].json()["text"]
    assert "Manual test alert" in text
    host.advance(2 * 86400)
    host.evaluate()
    assert host.notifications("escalated", channel="escalation") == []  # info never escalates
    host.post({"action": "resolve", "id": answer["alert"]["id"], "comment": "test over"})
    host.evaluate()  # a manual alert is not resolved or reopened by evaluation
    host.deliver()
    assert [r.path for r in receiver.requests] == ["/slack", "/slack"]
    assert host.active() == []


def test_manual_alert_descriptions_pass_the_pii_sanitiser(make_host: Callable[..., Host]) -> None:
    host = make_host()
    alert = trigger(host, "low", "Refund failed for maria@example.com card 4242 4242 4242 4242")["alert"]
    assert "maria@example.com" not in json.dumps(alert) and "4242 4242 4242 4242" not in json.dumps(alert)
    host.evaluate()
    (sent,) = host.notifications()
    assert "maria@example.com" not in json.dumps(sent.to_json())


def test_an_alert_no_channel_could_carry_stays_unsent_until_one_can(make_host: Callable[..., Host]) -> None:
    unconfigured = make_host({"ALERT_WEBHOOK_URL": "", "ESCALATION_WEBHOOK_URL": ""})
    trigger(unconfigured, "high", "Checkout failing")
    unconfigured.evaluate()
    (alert,) = unconfigured.active()
    assert alert["notifications"]["sent"] == 0 and alert["state"] == "firing"

    configured = make_host()  # the operator sets ALERT_WEBHOOK_URL and restarts: same store
    configured.evaluate()
    assert len(configured.notifications("firing")) == 1  # at once, not a repeat interval later
    assert configured.active()[0]["notifications"]["sent"] == 1
