"""The bad inputs a fuzzing run found answering 500 (issue 16), each a named regression test:
every one is a 400 in the one error shape, on SQLite and PostgreSQL, and nothing stored changes."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from monitoring.clock import ManualClock
from monitoring.settings import Settings
from monitoring.store.alerts_tables import alert_rules
from monitoring.store.business_tables import payment_events
from monitoring.store.uptime_tables import maintenance_windows
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS

ALERTS = "/api/monitoring/alerts"
EVENTS = "/api/monitoring/events"


@pytest.fixture
def client(store_url: str, make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Any]:
    app = create_app(make_settings({"DATABASE_URL": store_url, "RATELIMIT_ENABLED": "false",
                                    "ALERT_GROUP_WAIT": "0"}), clock=clock)
    yield app.test_client()
    app.extensions["centinela"].shutdown()
    app.extensions["centinela"].store.dispose()


def counts(client: Any) -> tuple[int, int, int]:
    store = client.application.extensions["centinela"].store
    with store.read() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (alert_rules, payment_events, maintenance_windows))


def post_raw(client: Any, path: str, text: str, headers: dict[str, str]) -> Any:
    return client.post(path, data=text.encode("utf-8", "surrogatepass"),
                       headers={**headers, "Content-Type": "application/json"})


def assert_400(response: Any, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["message"] and (code is None or error["code"] == code), error
    return error


RULE = {"name": "PoisonRule", "figure": "memory_usage_percent", "comparison": ">", "threshold": 0,
        "window": "5m", "for": 0, "severity": "info", "summary": "poison {value}"}


def test_a_rule_with_a_lone_surrogate_is_refused_and_alerting_goes_on(client: Any) -> None:
    """The repro of the issue: accepted with 200, it then stopped every evaluation run."""
    before = counts(client)
    poisoned = json.dumps({"action": "add_rule", "rule": {**RULE, "summary": "poison \ud83d {value}"}})
    assert "\\ud83d" in poisoned  # the JSON escape of half an emoji, as a client that cut a string sends it
    assert_400(post_raw(client, ALERTS, poisoned, ADMIN_HEADERS), "invalid_json")
    for field in ("description", "labels"):
        value: Any = {"team": "ops \ud83d"} if field == "labels" else "half \ud83d"
        body = json.dumps({"action": "add_rule", "rule": {**RULE, field: value}})
        assert_400(post_raw(client, ALERTS, body, ADMIN_HEADERS), "invalid_json")
    assert counts(client) == before
    monitoring = client.application.extensions["centinela"]
    assert monitoring.alerting.evaluate().outcomes  # the rules in force still evaluate


def test_json_nested_a_thousand_deep_is_refused(client: Any) -> None:
    deep = '{"action": "add_rule", "rule": ' + "[" * 1000 + "]" * 1000 + "}"
    assert "nested too deeply" in assert_400(post_raw(client, ALERTS, deep, ADMIN_HEADERS), "invalid_json")["message"]
    events = "[" * 5000 + "]" * 5000
    assert_400(post_raw(client, EVENTS, events, METRICS_HEADERS), "invalid_json")


@pytest.mark.parametrize("number", ["1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity"])
def test_numbers_beyond_range_are_refused(client: Any, number: str) -> None:
    body = '{"action": "add_rule", "rule": {"name": "Big", "figure": "error_rate", "comparison": ">", ' \
           f'"threshold": {number}, "severity": "info"}}}}'
    assert_400(post_raw(client, ALERTS, body, ADMIN_HEADERS), "invalid_json")
    event = f'{{"type": "payment", "outcome": "succeeded", "amount": {number}, "currency": "EUR"}}'
    assert_400(post_raw(client, EVENTS, event, METRICS_HEADERS))
    assert counts(client) == (0, 0, 0)


@pytest.mark.parametrize("alert_id", [2**63, 2**64, -(2**63) - 1])
def test_ids_beyond_the_columns_range_are_refused(client: Any, alert_id: int) -> None:
    for action in ("acknowledge", "resolve", "expire_silence", "delete_maintenance"):
        body = json.dumps({"action": action, "id": alert_id, "comment": "x"})
        response = post_raw(client, ALERTS, body, ADMIN_HEADERS)
        assert response.status_code == 400, (action, response.get_data(as_text=True))


def test_a_lone_surrogate_or_nul_in_any_text_field_is_refused(client: Any) -> None:
    for text in ("ticket \ud83d", "ticket \x00", "bell \x07"):
        event = json.dumps({"type": "ticket", "operation": "purchased", "ticket_type": text})
        assert_400(post_raw(client, EVENTS, event, METRICS_HEADERS), "invalid_json")
        ack = json.dumps({"action": "trigger", "severity": "info", "description": text})
        assert_400(post_raw(client, ALERTS, ack, ADMIN_HEADERS), "invalid_json")
    assert counts(client) == (0, 0, 0)


def test_comparison_sent_as_a_list_is_refused(client: Any) -> None:
    body = {"action": "add_rule", "rule": {**RULE, "name": "Listed", "comparison": [">"]}}
    assert_400(client.post(ALERTS, json=body, headers=ADMIN_HEADERS))
    assert counts(client)[0] == 0


@pytest.mark.parametrize("zone", ["America", "Europe/", "../../etc/passwd", "Not/AZone", "UTC\x00"])
def test_an_unknown_time_zone_is_refused(client: Any, zone: str) -> None:
    window = {"type": "weekly", "days": ["mon"], "start": "02:00", "end": "03:00", "timezone": zone}
    response = client.post(ALERTS, json={"action": "maintenance", "window": window}, headers=ADMIN_HEADERS)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert counts(client)[2] == 0


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00"])
def test_event_timestamps_at_the_ends_of_the_calendar_are_refused(client: Any, stamp: str) -> None:
    event = {"type": "payment", "outcome": "succeeded", "amount": 100, "currency": "EUR", "timestamp": stamp}
    assert_400(client.post(EVENTS, json=event, headers=METRICS_HEADERS))
    assert counts(client)[1] == 0


@pytest.mark.parametrize("body", ["null", "[]", '"text"', "42", "true"])
def test_a_body_that_is_not_an_object_gets_an_accurate_message(client: Any, body: str) -> None:
    error = assert_400(post_raw(client, ALERTS, body, ADMIN_HEADERS), "invalid_body")
    assert "not valid JSON" not in error["message"] and "object" in error["message"]


def _watching_and_poisoned(client: Any, clock: ManualClock, definition: Any) -> Any:
    """A rule added through the API, and a PoisonRule row written straight into the store (as an
    older version, or a hand edit, left it); then one health round and one evaluation."""
    monitoring = client.application.extensions["centinela"]
    watching = {"name": "Watching", "figure": "dependency_down", "comparison": ">=", "threshold": 0,
                "severity": "info", "summary": "watching {service}"}
    assert client.post(ALERTS, json={"action": "add_rule", "rule": watching}, headers=ADMIN_HEADERS).status_code == 200
    with monitoring.store.write() as conn:
        conn.execute(alert_rules.insert().values(name="PoisonRule", definition=definition(watching),
                                                 created_at=clock.now(), updated_at=clock.now(), updated_by="old"))
    monitoring.health.run_round()
    return monitoring.alerting.evaluate()


def test_a_rule_an_older_version_stored_with_a_lone_surrogate_fires_like_the_others(
        client: Any, clock: ManualClock) -> None:
    """The door refuses such text now; one stored before fires, its text escaped where it is
    stored (the store's JSON columns escape non-ASCII), and stops no other rule."""
    monitoring = client.application.extensions["centinela"]
    run = _watching_and_poisoned(client, clock, lambda watching: {
        **watching, "name": "PoisonRule", "summary": "poison \ud83d {service}"})
    assert not run.outcomes["PoisonRule"].error
    firing = {a.rule for a in monitoring.alerting.ledger.listing(states=("firing",), limit=50)}
    assert {"Watching", "PoisonRule"} <= firing


@pytest.mark.parametrize("definition", [
    pytest.param(lambda watching: "{not json", id="not-json"),
    pytest.param(lambda watching: {**watching, "name": "PoisonRule", "comparison": ["<"]}, id="not-a-rule"),
    pytest.param(lambda watching: [1, 2], id="a-list"),
])
def test_a_stored_rule_that_does_not_read_stops_no_other_and_is_reported(
        client: Any, clock: ManualClock, definition: Any) -> None:
    monitoring = client.application.extensions["centinela"]
    run = _watching_and_poisoned(client, clock, definition)
    assert "does not read as a rule" in run.outcomes["PoisonRule"].error  # it failed, visibly
    firing = {a.rule for a in monitoring.alerting.ledger.listing(states=("firing",), limit=50)}
    assert "Watching" in firing and "PoisonRule" not in firing  # the others went on
    clock.advance(15)
    monitoring.alerting.evaluate()  # the next run reads the failure and raises its own alert
    failing = [a for a in monitoring.alerting.ledger.listing(states=("firing",), limit=50)
               if a.rule == "RuleEvaluationFailing"]
    assert [a.labels["rule"] for a in failing] == ["PoisonRule"]
    assert "PoisonRule" in failing[0].annotations["summary"]
    listed = client.get(ALERTS + "?action=rules", headers=METRICS_HEADERS)
    assert listed.status_code == 200 and "Watching" in {r["name"] for r in listed.get_json()["rules"]}
