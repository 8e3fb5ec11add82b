"""When alerts are told, with the injected clock: each severity's default group wait, group
interval, repeat interval and escalation delay; the environment's one-duration and
per-severity forms and a rule's own timing; ``sendsAfter`` as the moment it is really sent;
quiet after recovery (a cleared alert is neither repeated nor escalated, and the value shown is
the latest, never the breach's); an escalation that an earlier resolve cancels."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from monitoring.clock import isoformat
from monitoring.notify.prompt import PromptDelivery
from tests.support.receiver import RecordingHTTPServer
from tests.test_alerts_support import Host, make_host, receiver  # noqa: F401

MINUTE = 60.0
HOUR = 3600.0
START = 1_767_225_600.0
# The per-severity defaults (the shared QUIET environment sets ALERT_GROUP_WAIT=0 for other tests).
DEFAULT_TIMING = {"ALERT_GROUP_WAIT": ""}


def trigger(host: Host, severity: str, description: str, service: str = "checkout") -> dict[str, Any]:
    return host.post({"action": "trigger", "severity": severity, "description": description, "service": service})


def dispatch(host: Host) -> None:
    """The dispatch the engine runs when something falls due (its timer), called directly."""
    host.monitoring.alerting.dispatch_due()  # type: ignore[attr-defined]


# --- each severity's defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize("severity, wait, interval, escalate", [
    ("critical", 0.0, 0.0, 0.0),  # at once, escalated with its first notification
    ("high", 10.0, 30.0, 30 * MINUTE),  # within seconds
    ("medium", MINUTE, 5 * MINUTE, 2 * HOUR),
    ("low", 5 * MINUTE, 5 * MINUTE, 24 * HOUR),
    ("info", 5 * MINUTE, 5 * MINUTE, None),
])
def test_each_severitys_default_timing(make_host: Callable[..., Host], severity: str, wait: float, interval: float,
                                       escalate: float | None) -> None:
    host = make_host(DEFAULT_TIMING)
    first = trigger(host, severity, "first trouble")
    assert first["sendsAfter"] == isoformat(START + wait)
    if wait:
        host.advance(wait - 1)
        dispatch(host)
        assert host.notifications("firing") == []  # still gathering its group
        host.advance(1)
        dispatch(host)
    (sent,) = host.notifications("firing")  # a critical one went with the trigger itself
    told_at = host.clock.now()
    assert sent.alerts[0].fingerprint == first["alert"]["fingerprint"]

    # Another alert of the same group: the group interval after the group was told (and at
    # least its own group wait).
    second = trigger(host, severity, "second trouble")
    due = told_at + max(wait, interval)
    assert second["sendsAfter"] == isoformat(due)
    if due > host.clock.now():
        host.advance(due - host.clock.now() - 1)
        dispatch(host)
        assert len(host.notifications("firing")) == 1
        host.advance(1)
        dispatch(host)
    assert [len(n.alerts) for n in host.notifications("firing")] == [1, 1]

    escalations = host.notifications("escalated", channel="escalation")
    if escalate is None:
        host.advance(30 * 86400)
        dispatch(host)
        assert host.notifications("escalated", channel="escalation") == []
        return
    if escalate:
        assert escalations == []
        host.clock.set(told_at + escalate - 1)
        dispatch(host)
        assert host.notifications("escalated", channel="escalation") == []
        host.clock.set(told_at + escalate)
        dispatch(host)
    escalated = host.notifications("escalated", channel="escalation")
    assert escalated[0].alerts[0].fingerprint == first["alert"]["fingerprint"]


def test_the_default_repeat_interval_is_four_hours(make_host: Callable[..., Host]) -> None:
    host = make_host({**DEFAULT_TIMING, "ALERT_ESCALATION_AFTER": "none"})
    trigger(host, "critical", "Checkout down")
    host.advance(4 * HOUR - 1)
    dispatch(host)
    assert len(host.notifications("firing")) == 1
    host.advance(1)
    dispatch(host)
    assert [n.id.rsplit(".", 1)[-1] for n in host.notifications("firing")] == ["1", "2"]


def test_the_configuration_shows_each_severitys_timing(make_host: Callable[..., Host]) -> None:
    host = make_host({**DEFAULT_TIMING, "ALERT_GROUP_INTERVAL": '{"high": "1m"}', "ALERT_REPEAT_INTERVAL": "2h"})
    body = host.client.get("/api/monitoring/alerts?action=configuration", headers={"X-API-Key": "x"})
    assert body.status_code == 401
    body = host.client.get("/api/monitoring/alerts?action=configuration",
                           headers={"X-Admin-Key": "test-admin-key-fedcba9876543210"}).get_json()
    by_severity = body["alerting"]["bySeverity"]
    assert by_severity["critical"] == {"groupWaitSeconds": 0.0, "groupIntervalSeconds": 0.0,
                                       "repeatIntervalSeconds": 7200.0, "escalateAfterSeconds": 0}
    assert by_severity["high"] == {"groupWaitSeconds": 10.0, "groupIntervalSeconds": 60.0,
                                   "repeatIntervalSeconds": 7200.0, "escalateAfterSeconds": 1800}
    matrix = {row["severity"]: row for row in body["severityMatrix"]}
    assert matrix["medium"]["groupWaitSeconds"] == 60.0 and matrix["medium"]["escalation"] == "2 hours"


# --- a rule's own timing --------------------------------------------------------------------------------


def test_a_rule_sets_its_own_timing(make_host: Callable[..., Host]) -> None:
    host = make_host(DEFAULT_TIMING)
    changed = host.post({"action": "update_rule", "rule": {
        "name": "HighErrorRate", "timing": {"group_wait": "0", "escalate_after": "none"}}})["rule"]
    assert changed["timing"] == {"group_wait": "0s", "escalate_after": "none"}  # zero is written "0s" (durations.py)
    assert changed["effectiveTiming"] == {"groupWaitSeconds": 0.0, "groupIntervalSeconds": 30.0,
                                          "repeatIntervalSeconds": 14400.0, "escalateAfterSeconds": None}
    host.requests("/checkout", 10)
    host.flush()
    host.evaluate()
    (sent,) = host.notifications("firing")  # no group wait: in the evaluation that fired it
    assert sent.alerts[0].name == "HighErrorRate"
    host.advance(2 * HOUR)
    host.requests("/checkout", 10)
    host.flush()
    host.evaluate()
    assert host.notifications(channel="escalation") == []  # this rule never escalates
    shown = host.firing()["HighErrorRate"]
    assert shown["escalation"]["afterSeconds"] is None and shown["escalation"]["dueAt"] is None


@pytest.mark.parametrize("timing, message", [
    ({"group_wait": "soon"}, "group_wait: must be a duration"),
    ({"group_wait": "2h"}, "from 0 to 1h"),
    ({"repeat_interval": "10s"}, "repeat_interval: must be a duration such as 0, 30s, 5m, 4h or 1d, from 1m"),
    ({"group_wait": "none"}, "group_wait: must be a duration"),
    ({"linger": "5m"}, "linger is not a timing"),
    ("5m", "must be an object of group_wait, group_interval, repeat_interval, escalate_after"),
])
def test_a_bad_rule_timing_is_refused_naming_it(make_host: Callable[..., Host], timing: Any, message: str) -> None:
    host = make_host()
    error = host.post({"action": "update_rule", "rule": {"name": "HighErrorRate", "timing": timing}}, 400)["error"]
    assert error["code"] == "invalid_rule" and error["problems"][0]["field"] == "timing"
    assert message in error["problems"][0]["message"]
    assert host.rules()["HighErrorRate"]["timing"] == {}  # nothing stored


def test_a_rule_added_without_a_window_takes_its_figures_default(make_host: Callable[..., Host]) -> None:
    host = make_host({"ALERT_ERROR_RATE_WINDOW": "2m", "ALERT_PAYMENT_FAILURE_RATE_WINDOW": "10m"})
    added = host.post({"action": "add_rule", "rule": {
        "name": "CheckoutErrors", "figure": "error_rate", "comparison": ">", "threshold": 0.2, "severity": "low",
        "summary": "Checkout errors {value_percent}"}})["rule"]
    assert added["window"] == "2m"
    rules = host.rules()
    assert rules["HighErrorRate"]["window"] == "2m" and rules["PaymentFailures"]["window"] == "10m"


# --- sendsAfter, and delivery at once -----------------------------------------------------------------


def test_sends_after_is_when_the_notification_is_written(make_host: Callable[..., Host]) -> None:
    host = make_host(DEFAULT_TIMING)
    answer = trigger(host, "high", "Refund queue growing")
    assert answer["sendsAfter"] == isoformat(START + 10)
    host.advance(10)
    dispatch(host)  # what the engine's timer runs at that moment
    (row,) = host.outbox_rows(channel="webhook")
    assert isoformat(row["created_at"]) == answer["sendsAfter"]
    muted = host.post({"action": "silence", "matchers": ['service="refunds"'], "duration": "1h",
                       "comment": "maintenance"})
    assert muted["silence"]["id"]
    silenced = trigger(host, "critical", "Refunds down", service="refunds")
    assert silenced["sendsAfter"] is None and silenced["alert"]["muted"]["by"] == "silence"


def test_a_critical_trigger_reaches_every_channel_before_its_answer_returns(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host({**DEFAULT_TIMING, "ALERT_WEBHOOK_URL": receiver.url + "/hook",
                      "SLACK_WEBHOOK_URL": receiver.url + "/slack", "ESCALATION_WEBHOOK_URL": receiver.url + "/esc"})
    outbox = host.monitoring.outbox
    outbox.prompt = PromptDelivery(outbox, background=False)  # the committing process sends, in its own thread
    answer = trigger(host, "critical", "Payment system down", service="payments")
    assert answer["sendsAfter"] == isoformat(START)
    assert sorted(r.path for r in receiver.requests) == ["/esc", "/hook", "/slack"]
    assert {d["status"] for d in host.outbox_rows()} == {"delivered"}
    host.deliver()  # the delivery job finds nothing left to send
    assert len(receiver.requests) == 3


# --- quiet after recovery ------------------------------------------------------------------------------


def error_spike(host: Host, failing: int, ok: int) -> None:
    host.requests("/checkout", failing)
    host.requests("/tickets", ok)
    host.flush()


def test_a_cleared_alert_is_neither_repeated_nor_escalated_and_shows_the_latest_value(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"ALERT_REPEAT_INTERVAL": "1m"})
    host.post({"action": "update_rule", "rule": {"name": "HighErrorRate", "keep_firing_for": "1h", "window": "1m"}})
    error_spike(host, failing=2, ok=8)  # 20 % > 5 %
    host.evaluate()
    (first,) = host.notifications("firing")
    assert first.alerts[0].annotations["value"] == "0.2"

    host.advance(MINUTE)  # still breaching, worse: the repeat carries the value of this evaluation
    error_spike(host, failing=6, ok=4)  # (2 + 6) of 20 in the window's two minute rows
    host.evaluate()
    repeat = host.notifications("firing")[-1]
    assert repeat.alerts[0].annotations["value"] == "0.4" and "40%" in repeat.alerts[0].summary

    host.advance(2 * MINUTE)  # recovered: the failures left the window, fine requests only
    error_spike(host, failing=0, ok=50)
    run = host.evaluate()
    assert run.resolved == [] and len(run.cleared) == 1  # kept open by keep_firing_for
    shown = host.firing()["HighErrorRate"]
    assert shown["value"] == 0.0 and shown["annotations"]["value"] == "0"
    sent = len(host.notifications())
    for _ in range(40):  # well past the repeat interval and the high escalation delay (30 min)
        host.advance(MINUTE)
        error_spike(host, failing=0, ok=5)
        host.evaluate()
        dispatch(host)
    assert len(host.notifications()) == sent  # not a word
    assert host.notifications(channel="escalation") == []
    assert host.firing()["HighErrorRate"]["notifications"]["nextRepeatAt"] is None

    host.advance(30 * MINUTE)
    error_spike(host, failing=0, ok=5)
    host.evaluate()  # keep_firing_for is over: resolved, and that is all that is sent
    (resolved,) = host.notifications("resolved")
    assert resolved.alerts[0].summary.startswith("Resolved after 1 h 13 m: error rate 0.0 % over 1 m")
    assert [n.event for n in host.notifications()][sent:] == ["resolved"]


def test_a_cleared_alert_that_breaches_again_is_told_again(make_host: Callable[..., Host]) -> None:
    host = make_host({"ALERT_REPEAT_INTERVAL": "1m"})
    host.post({"action": "update_rule", "rule": {"name": "HighErrorRate", "keep_firing_for": "1h", "window": "1m"}})
    error_spike(host, failing=3, ok=7)
    host.evaluate()
    host.advance(2 * MINUTE)
    error_spike(host, failing=0, ok=10)
    host.evaluate()
    assert host.firing()["HighErrorRate"]["clearedAt"] is not None
    host.advance(MINUTE)
    error_spike(host, failing=5, ok=5)
    host.evaluate()
    again = host.firing()["HighErrorRate"]
    assert again["clearedAt"] is None and again["value"] == 0.25  # 5 of the window's 20 requests
    assert [e["kind"] for e in host.history()[0]["events"]][-3:] == ["cleared", "breaching", "notified"]
    assert host.notifications("firing")[-1].alerts[0].annotations["value"] == "0.25"


def test_an_escalation_due_after_the_alert_resolved_is_never_sent(make_host: Callable[..., Host]) -> None:
    host = make_host(DEFAULT_TIMING)
    alert = trigger(host, "high", "Payout queue stuck")["alert"]
    host.advance(10)
    dispatch(host)
    assert host.firing()["ManualAlert"]["escalation"]["dueAt"] == isoformat(START + 10 + 30 * MINUTE)
    host.advance(10 * MINUTE)
    host.post({"action": "resolve", "id": alert["id"], "comment": "queue drained"})
    host.advance(HOUR)
    dispatch(host)
    host.evaluate()
    assert host.notifications(channel="escalation") == []
    assert [n.event for n in host.notifications()] == ["firing", "resolved"]
    (resolved,) = host.notifications("resolved")
    assert resolved.alerts[0].summary.startswith("Resolved by admin:") and "after 10 m" in resolved.alerts[0].summary
    assert resolved.alerts[0].summary.endswith(": queue drained")


def test_a_waiting_escalation_is_cancelled_when_its_alert_resolves(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "ESCALATION_WEBHOOK_URL": receiver.url + "/page"})
    receiver.route("/page", 503, "paging is down")
    alert = trigger(host, "critical", "Checkout down")["alert"]
    host.deliver()
    escalation = host.outbox_rows(channel="escalation")[0]
    assert (escalation["event"], escalation["status"], escalation["attempts"]) == ("escalated", "pending", 1)
    host.post({"action": "resolve", "id": alert["id"]})
    receiver.unroute("/page")  # paging works again
    host.advance(HOUR)
    host.deliver()
    rows = {(row["channel"], row["event"]): row for row in host.outbox_rows()}
    assert rows[("escalation", "escalated")]["status"] == "cancelled"
    assert "resolved before" in rows[("escalation", "escalated")]["last_error"]
    assert rows[("escalation", "resolved")]["status"] == "delivered"
    paged = [r.json()["event"] for r in receiver.requests if r.path == "/page"]
    assert paged == ["escalated", "resolved"]  # the refused attempt, then only the resolve
    listing = host.client.get("/api/monitoring/alerts?action=deliveries&status=cancelled",
                              headers={"X-Admin-Key": "test-admin-key-fedcba9876543210"}).get_json()
    assert [d["event"] for d in listing["deliveries"]] == ["escalated"] and listing["counts"]["cancelled"] == 1
