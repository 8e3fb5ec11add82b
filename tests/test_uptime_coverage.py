"""Honest with little data: every availability and SLA figure carries what it rests on, and no
verdict is given on too little of the window (UPTIME_MIN_COVERAGE), through the real app, its
real health rounds and a driven clock."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from monitoring.clock import ManualClock
from monitoring.uptime.coverage import Coverage, judged
from monitoring.uptime.durations import format_span
from tests.conftest import METRICS_HEADERS

UPTIME = "/api/monitoring/uptime"
FEED = "/api/monitoring/dashboard/data"
DAY = 86400.0
# Rounds every 10 s; the outage is the dependency's answers round by round (an open breaker would stretch it).
ROUNDS = {"HEALTH_CHECK_INTERVAL": "10", "BREAKER_FAILURE_THRESHOLD": "1000"}


class Dependency:
    """A critical custom check whose answer the test sets."""

    def __init__(self, application: Any) -> None:
        self.up = True
        self.health = application.extensions["centinela"].health
        self.health.register("shop", lambda: self.up, critical=True)

    def round(self, up: bool) -> None:
        self.up = up
        self.health.run_round()


def outage(application: Any, clock: ManualClock, before: int, down: int, after: int, step: int = 10) -> None:
    """Rounds every ``step`` seconds: up for ``before`` s, down for ``down`` s, up again for ``after`` s."""
    shop = Dependency(application)
    for offset in range(0, before + down + after + 1, step):
        shop.round(up=not before <= offset < before + down)
        if offset < before + down + after:
            clock.advance(step)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59.9, "59 s"), (60, "1 min"), (125, "2 min"), (3600, "1 h"), (26_000, "7 h 13 min"),
    (86_400, "1 d"), (30 * DAY, "30 d"), (2 * DAY + 5 * 3600 + 59, "2 d 5 h"),
])
def test_a_span_reads_in_its_two_largest_units(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


def test_coverage_judges_only_from_enough_of_the_window() -> None:
    little = Coverage(known_seconds=120, of_seconds=30 * DAY, minimum=1.0)
    assert little.summary == "measured for 2 min of 30 d" and not little.enough
    assert judged(False, little) is None and judged(True, little) is None
    enough = Coverage(known_seconds=0.01 * 30 * DAY, of_seconds=30 * DAY, minimum=1.0)
    assert enough.enough and judged(False, enough) is False
    assert not Coverage(0, 30 * DAY, 0.0).enough  # nothing known is never enough, whatever the minimum
    assert Coverage(0, 0, 1.0).share is None
    assert little.to_json() == {"known": 0.0046, "enough": False, "minimum": 1.0,
                                "summary": "measured for 2 min of 30 d"}


def test_two_minutes_of_outage_on_day_one_get_no_verdict(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app(ROUNDS)
    outage(application, clock, before=20, down=120, after=30)
    body = application.test_client().get(UPTIME).get_json()
    assert body["uptime"]["downSeconds"] == 120.0 and body["uptime"]["percentage"] < 50
    expected = {"known": body["coverage"]["known"], "enough": False, "minimum": 1.0,
                "summary": "measured for 2 min of 30 d"}
    assert body["uptime"]["coverage"] == expected and body["sla"]["coverage"] == expected
    assert body["coverage"]["enough"] is False and body["coverage"]["summary"] == "measured for 2 min of 30 d"
    assert body["sla"]["compliance"] == {"overall": None, "uptime": None, "errorRate": None}  # not "missed"
    # The error budget is real time spent, shown beside what it rests on.
    assert body["sla"]["errorBudget"]["consumedSeconds"] == 120.0
    # Burn rates carry their windows' coverage; an alert fires only on windows measured enough.
    coverage = body["sla"]["burnRates"]["coverage"]
    assert coverage["5m"] == round(100 * 170 / 300, 4) and coverage["3d"] < 1.0  # 170 s known
    firing = {(a["longWindow"], a["shortWindow"]) for a in body["sla"]["burnRates"]["alerts"] if a["firing"]}
    assert firing == {("1h", "5m")}  # 2 of the last 3 min down burns a 1 h budget; a 3-day verdict needs more
    # "Up for" is the 30 s since the outage ended, inside the up time the percentage counts.
    assert body["uptime"]["state"] == "up" and body["uptime"]["seconds"] == 30.0
    assert body["uptime"]["seconds"] <= body["uptime"]["upSeconds"] == 50.0


def test_the_same_outage_is_judged_once_the_window_is_covered(make_app: Callable[..., Any],
                                                              clock: ManualClock) -> None:
    application = make_app({**ROUNDS, "UPTIME_MIN_COVERAGE": "0.0001"})
    outage(application, clock, before=20, down=120, after=30)
    body = application.test_client().get(UPTIME).get_json()
    assert body["coverage"]["enough"] is True
    assert body["sla"]["compliance"]["uptime"] is False and body["sla"]["compliance"]["overall"] is False


def test_a_failing_error_rate_fails_the_sla_even_before_uptime_can_be_judged(
        make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app(ROUNDS)
    client = application.test_client()
    Dependency(application).round(up=True)
    for _ in range(3):
        client.get("/no-such-page")  # 404s: counted, not errors
    application.extensions["centinela"].scheduler.run_process("metrics_flush")
    clock.advance(60)
    body = client.get(UPTIME).get_json()
    assert body["sla"]["compliance"] == {"overall": None, "uptime": None, "errorRate": True}


def test_down_now_is_said_as_down_not_up_for_zero_seconds(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app(ROUNDS)
    shop = Dependency(application)
    shop.round(up=True)
    for _ in range(6):
        clock.advance(10)
        shop.round(up=False)  # the last round found it down
    body = application.test_client().get(UPTIME).get_json()
    assert body["uptime"]["state"] == "down" and body["uptime"]["since"] is None
    assert body["incidents"]["open"] is not None
    clock.advance(3600)  # no round since: nothing vouches for now (the monitor itself stopped)
    body = application.test_client().get(UPTIME).get_json()
    assert body["uptime"]["state"] == "unknown" and body["incidents"]["open"] is not None


def test_the_dashboard_carries_the_coverage_and_the_rates_behind_a_firing_burn_alert(
        make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app(ROUNDS)
    outage(application, clock, before=20, down=120, after=30)
    document = application.test_client().get(FEED, headers=METRICS_HEADERS).get_json()
    uptime = document["uptime"]
    assert uptime["coverage"]["summary"] == "measured for 2 min of 30 d" and uptime["coverage"]["enough"] is False
    assert uptime["uptime"]["coverage"]["enough"] is False and uptime["sla"]["coverage"]["enough"] is False
    (firing,) = uptime["sla"]["burnRateAlertsFiring"]
    assert firing["longWindow"] == "1h" and firing["longRate"] > firing["threshold"] == 14.4
    assert firing["shortRate"] == uptime_rate(application, "5m")
    assert all("checks24h" in service for service in document["services"])


def uptime_rate(application: Any, window: str) -> float:
    return application.test_client().get(UPTIME).get_json()["sla"]["burnRates"]["windows"][window]
