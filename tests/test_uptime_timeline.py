"""Availability by time from real health rounds: 30 days with known outages, maintenance and a gap,
checked to the second; unknown coverage; incidents that survive restarts and never open twice."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from monitoring.clock import ManualClock
from monitoring.settings import Settings
from monitoring.store.uptime_tables import incidents, uptime_segments
from monitoring.uptime.maintenance import parse_window_spec
from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer

UPTIME = "/api/monitoring/uptime"
HISTORY = "/api/monitoring/uptime/incidents"
HOUR = 3600.0
DAY = 86400.0


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC).timestamp()


def jan(day: int, hour: int = 0, minute: int = 0) -> float:
    return at(1, day, hour, minute)


@pytest.fixture
def servers() -> Iterator[dict[str, RecordingHTTPServer]]:
    with RecordingHTTPServer() as shop, RecordingHTTPServer() as search:
        yield {"shop": shop, "search": search}


def checks_env(servers: dict[str, RecordingHTTPServer], interval: float) -> dict[str, str]:
    return {
        "HEALTH_CHECK_INTERVAL": str(interval),
        "BREAKER_FAILURE_THRESHOLD": "1000",  # breakers have their own tests: here every round calls the server
        "HEALTH_CHECKS": json.dumps([
            {"name": "shop", "type": "http", "url": servers["shop"].url + "/health", "critical": True, "timeout": 2},
            {"name": "search", "type": "http", "url": servers["search"].url + "/health", "timeout": 2},
        ]),
    }


class Outages:
    """What each local dependency answers when: (start, end, service, "500" | "refuse")."""

    def __init__(self, servers: dict[str, RecordingHTTPServer], plan: Iterable[tuple[float, float, str, str]]) -> None:
        self.servers = servers
        self.plan = list(plan)

    def apply(self, moment: float) -> None:
        for name, server in self.servers.items():
            modes = [mode for start, end, service, mode in self.plan if service == name and start <= moment < end]
            mode = modes[0] if modes else "up"
            if mode == "refuse":
                server.refuse()
            else:
                server.resume()
                server.respond(500 if mode == "500" else 200)


def drive(application: Any, clock: ManualClock, moments: Iterable[float], outages: Outages) -> None:
    """At each moment: set the clock, switch the dependencies, run the real health round (which folds it)."""
    health = application.extensions["centinela"].health
    for moment in sorted(set(moments)):
        clock.set(moment)
        outages.apply(moment)
        health.run_round()


def hourly(start: float, end: float, skip: tuple[float, float] | None = None) -> list[float]:
    moments, moment = [], start
    while moment <= end:
        if skip is None or not skip[0] < moment < skip[1]:
            moments.append(moment)
        moment += HOUR
    return moments


# --- the 30 days -------------------------------------------------------------------------------------

# 2026-01-01 is a Thursday; the weekly window (Sundays 02:00-04:00 in Madrid, UTC+1 in January) covers
# 01:00-03:00 UTC on January 4, 11, 18 and 25.
OUTAGES = [
    (jan(4, 10, 0), jan(4, 10, 20), "shop", "500"),  # A: 20 min
    (jan(11, 1, 0), jan(11, 2, 0), "shop", "500"),  # C: inside the weekly window: not counted
    (jan(11, 14, 0), jan(11, 14, 15), "shop", "refuse"),  # B: 15 min, connection refused
    (jan(15, 8, 0), jan(15, 9, 0), "search", "500"),  # search is not critical: degraded, still up
    (jan(21, 12, 10), jan(21, 12, 40), "shop", "500"),  # D: inside a window scoped to shop: not counted
    (jan(30, 23, 10), jan(30, 23, 30), "shop", "500"),  # E: 20 min, just before the end
]
GAP = (jan(26, 0), jan(26, 6))  # the monitor stopped: no rounds in between
END = jan(31)


@pytest.fixture(scope="module")
def thirty_days(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app after 30 days of hourly rounds (plus one at each outage's edges): driven once, read by several tests."""
    clock = ManualClock()
    var = tmp_path_factory.mktemp("thirty-days")
    with RecordingHTTPServer() as shop, RecordingHTTPServer() as search:
        servers = {"shop": shop, "search": search}
        settings = Settings.from_env({
            "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'store.db'}", "SCHEDULER_ENABLED": "false",
            **checks_env(servers, HOUR),
        })
        application = create_app(settings, clock=clock)
        calendar = application.extensions["centinela"].uptime.calendar
        calendar.create(parse_window_spec({"type": "weekly", "days": ["sun"], "start_time": "02:00", "duration": "2h",
                                           "timezone": "Europe/Madrid", "reason": "weekly deploys"}),
                        created_by="test")
        calendar.create(parse_window_spec({"type": "one_off", "start": "2026-01-21T12:00:00Z",
                                           "end": "2026-01-21T13:00:00Z", "services": ["shop"],
                                           "reason": "shop database migration"}))
        edges = [moment for start, end, _, _ in OUTAGES for moment in (start, end)]
        drive(application, clock, hourly(jan(1), END, skip=GAP) + edges, Outages(servers, OUTAGES))
        yield application
    application.extensions["centinela"].shutdown()
    application.extensions["centinela"].store.dispose()


def test_thirty_days_of_rounds_give_the_exact_figures(thirty_days: Any) -> None:
    body = thirty_days.test_client().get(UPTIME + "?window=30d").get_json()

    maintenance = 4 * 2 * HOUR + 30 * 60  # four weekly windows, and D's 30 minutes inside the shop-scoped one
    unknown = 6 * HOUR - 2.5 * HOUR  # the last round before the gap vouches for 2.5 x HEALTH_CHECK_INTERVAL
    down = 20 * 60 + 15 * 60 + 20 * 60  # A + B + E
    eligible = 30 * DAY - maintenance
    known = eligible - unknown
    up = known - down
    assert body["window"] == {"label": "30d", "from": "2026-01-01T00:00:00.000Z", "to": "2026-01-31T00:00:00.000Z",
                              "seconds": 30 * DAY, "measuredTo": "2026-01-31T00:00:00.000Z", "complete": True}
    assert body["uptime"]["percentage"] == round(100 * up / known, 4) == 99.8705
    assert (body["uptime"]["upSeconds"], body["uptime"]["downSeconds"]) == (up, down)
    assert body["uptime"]["degradedSeconds"] == HOUR
    assert body["coverage"]["maintenanceSeconds"] == maintenance
    assert (body["coverage"]["knownSeconds"], body["coverage"]["unknownSeconds"]) == (known, unknown)
    assert body["coverage"]["unknown"] == round(100 * unknown / eligible, 4)
    assert body["coverage"]["gaps"] == [
        {"from": "2026-01-26T02:30:00.000Z", "to": "2026-01-26T06:00:00.000Z", "seconds": unknown}
    ]

    # Three incidents had counted down time (C and D fell in maintenance).
    assert body["incidents"]["count"] == 3
    assert body["mttr"]["seconds"] == down / 3 == 1100
    assert body["mttr"]["formatted"] == "18m 20s"
    assert body["mtbf"]["seconds"] == round(up / 3, 3)
    assert "total down time in the window / number of incidents" in body["mttr"]["definition"]
    assert "total up time in the window / number of incidents" in body["mtbf"]["definition"]

    budget = body["sla"]["errorBudget"]
    allowed = 0.001 * eligible
    assert budget["allowedSeconds"] == round(allowed, 3) == 2561.4
    assert budget["consumedSeconds"] == down
    assert budget["remainingSeconds"] == round(allowed - down, 3)
    assert budget["remainingPercentage"] == round(100 * (allowed - down) / allowed, 4) == -28.8358
    assert budget["exhausted"] is True
    assert body["sla"]["compliance"] == {"overall": False, "uptime": False, "errorRate": None}

    rates = body["sla"]["burnRates"]["windows"]
    assert rates == {
        "5m": 0.0,
        "30m": 0.0,  # up since 23:30
        "1h": round(1200 / 3600 / 0.001, 4),
        "2h": round(1200 / 7200 / 0.001, 4),
        "6h": round(1200 / (6 * HOUR) / 0.001, 4),
        "1d": round(1200 / DAY / 0.001, 4),
        "3d": round(1200 / (3 * DAY) / 0.001, 4),
    }
    firing = {(a["longWindow"], a["shortWindow"], a["threshold"]): a["firing"]
              for a in body["sla"]["burnRates"]["alerts"]}
    assert firing == {("1h", "5m", 14.4): False, ("6h", "30m", 6.0): False,
                      ("1d", "2h", 3.0): True, ("3d", "6h", 1.0): True}

    assert body["uptime"]["since"] == "2026-01-30T23:30:00.000Z"
    assert body["uptime"]["formatted"] == "30m"
    assert body["status"] == "healthy"


def test_thirty_days_of_incidents_with_their_causes(thirty_days: Any) -> None:
    page = thirty_days.test_client().get(HISTORY).get_json()
    assert page["next"] is None
    found = [(i["start"], i["end"], i["durationSeconds"], i["services"], i["cause"], i["status"])
             for i in page["incidents"]]
    http_500 = "critical dependency down: shop (HTTP 500)"
    assert found == [
        ("2026-01-30T23:10:00.000Z", "2026-01-30T23:30:00.000Z", 1200.0, ["shop"], http_500, "resolved"),
        ("2026-01-21T12:10:00.000Z", "2026-01-21T12:40:00.000Z", 1800.0, ["shop"], http_500, "resolved"),
        ("2026-01-11T14:00:00.000Z", "2026-01-11T14:15:00.000Z", 900.0, ["shop"],
         "critical dependency down: shop (connection refused)", "resolved"),
        ("2026-01-11T01:00:00.000Z", "2026-01-11T02:00:00.000Z", 3600.0, ["shop"], http_500, "resolved"),
        ("2026-01-04T10:00:00.000Z", "2026-01-04T10:20:00.000Z", 1200.0, ["shop"], http_500, "resolved"),
    ]
    # The degraded hour (search down, not critical) is no incident; the uptime answer lists the newest first.
    recent = thirty_days.test_client().get(UPTIME).get_json()["incidents"]
    assert [i["start"] for i in recent["recent"]] == [f[0] for f in found]
    assert recent["open"] is None and recent["history"] == HISTORY


def test_a_calendar_month_not_over_yet_budgets_for_the_whole_month(thirty_days: Any) -> None:
    body = thirty_days.test_client().get(UPTIME + "?month=2026-01").get_json()
    maintenance = 4 * 2 * HOUR + 30 * 60
    assert body["window"]["seconds"] == 31 * DAY and body["window"]["complete"] is False
    assert body["window"]["measuredTo"] == "2026-01-31T00:00:00.000Z"
    assert body["sla"]["errorBudget"]["allowedSeconds"] == round(0.001 * (31 * DAY - maintenance), 3)
    assert body["uptime"]["percentage"] == 99.8705  # the same 30 days measured so far


# --- unknown coverage --------------------------------------------------------------------------------


def test_a_gap_with_no_rounds_is_unknown_not_up(
    make_app: Callable[..., Any], clock: ManualClock, servers: dict[str, RecordingHTTPServer]
) -> None:
    application = make_app(checks_env(servers, 30))
    start = clock.now()
    client = application.test_client()
    assert client.get(UPTIME + "?window=24h").get_json()["uptime"]["percentage"] is None  # nothing known yet
    outages = Outages(servers, [])
    drive(application, clock, [start + 30 * i for i in range(21)], outages)  # 10 minutes of rounds
    drive(application, clock, [start + 1200 + 30 * i for i in range(21)], outages)  # 10 silent minutes, then 10 more
    clock.set(start + 1800)
    body = client.get(UPTIME + "?window=24h").get_json()
    assert body["uptime"]["percentage"] == 100.0
    assert body["coverage"]["gaps"][-1] == {
        "from": "2026-01-01T00:11:15.000Z", "to": "2026-01-01T00:20:00.000Z", "seconds": 525.0
    }
    assert body["coverage"]["knownSeconds"] == 600 + 75 + 600  # each stretch plus the last round's grace
    assert body["coverage"]["unknownSeconds"] == DAY - body["coverage"]["knownSeconds"]
    # The current up period began after the gap: the rounds before it vouch for nothing now.
    assert body["uptime"]["since"] == "2026-01-01T00:20:00.000Z" and body["uptime"]["formatted"] == "10m"

    clock.advance(76)  # the last round's grace has run out: nothing vouches for now
    body = client.get(UPTIME + "?window=24h").get_json()
    assert body["uptime"]["since"] is None and body["uptime"]["formatted"] == "0s"
    assert body["coverage"]["gaps"][-1] == {"from": "2026-01-01T00:31:15.000Z", "to": "2026-01-01T00:31:16.000Z",
                                            "seconds": 1.0}


def test_a_failed_fold_is_caught_up_by_the_next_round(
    make_app: Callable[..., Any], clock: ManualClock, servers: dict[str, RecordingHTTPServer]
) -> None:
    application = make_app(checks_env(servers, 30))
    monitoring = application.extensions["centinela"]
    listeners = monitoring.health.round_listeners
    saved = list(listeners)
    listeners.clear()  # the rounds are stored, but nobody folds them
    outages = Outages(servers, [(clock.now() + 30, clock.now() + 90, "shop", "500")])
    drive(application, clock, [clock.now() + 30 * i for i in range(5)], outages)
    listeners.extend(saved)
    with monitoring.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 0
    drive(application, clock, [clock.now() + 30], outages)
    page = application.test_client().get(HISTORY).get_json()["incidents"]
    assert [(i["start"], i["end"]) for i in page] == [("2026-01-01T00:00:30.000Z", "2026-01-01T00:01:30.000Z")]


# --- incidents across restarts and workers ---------------------------------------------------------------


def test_incidents_survive_a_restart_of_the_app(
    make_app: Callable[..., Any], clock: ManualClock, servers: dict[str, RecordingHTTPServer], store_url: str
) -> None:
    env = {**checks_env(servers, 30), "DATABASE_URL": store_url}
    first = make_app(env)
    outages = Outages(servers, [(clock.now() + 60, clock.now() + 600, "shop", "refuse")])
    drive(first, clock, [clock.now() + 30 * i for i in range(4)], outages)  # up, up, down, down
    opened = first.test_client().get(UPTIME).get_json()["incidents"]["open"]
    assert opened["start"] == "2026-01-01T00:01:00.000Z" and opened["status"] == "open"
    first.extensions["centinela"].shutdown()
    first.extensions["centinela"].store.dispose()

    second = make_app(env)  # a new process on the same store
    client = second.test_client()
    assert client.get(UPTIME).get_json()["incidents"]["open"]["id"] == opened["id"]
    drive(second, clock, [clock.now() + 30 * i for i in range(1, 30)], outages)  # still down, then up at 00:10
    page = client.get(HISTORY).get_json()["incidents"]
    assert [(i["id"], i["start"], i["end"], i["durationSeconds"]) for i in page] == [
        (opened["id"], "2026-01-01T00:01:00.000Z", "2026-01-01T00:10:00.000Z", 540.0)
    ]
    assert client.get(UPTIME + "?window=24h").get_json()["uptime"]["downSeconds"] == 540.0


def test_rounds_in_several_workers_at_once_open_one_incident(
    make_app: Callable[..., Any], clock: ManualClock, servers: dict[str, RecordingHTTPServer], store_url: str
) -> None:
    env = {**checks_env(servers, 30), "DATABASE_URL": store_url}
    workers = [make_app(env) for _ in range(3)]
    servers["shop"].respond(500)
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def rounds(application: Any) -> None:
        try:
            for _ in range(4):
                barrier.wait(timeout=10)
                application.extensions["centinela"].health.refresh()  # what an admin refresh does in any worker
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rounds, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    monitoring = workers[0].extensions["centinela"]
    with monitoring.store.read() as conn:
        rows = conn.execute(select(incidents)).mappings().all()
        segments = conn.execute(select(func.count()).select_from(uptime_segments)).scalar_one()
    assert len(rows) == 1 and rows[0]["ended_at"] is None and segments == 1
    clock.advance(30)
    servers["shop"].respond(200)
    workers[1].extensions["centinela"].health.run_round()
    page = workers[2].test_client().get(HISTORY).get_json()["incidents"]
    assert [(i["status"], i["end"]) for i in page] == [("resolved", "2026-01-01T00:00:30.000Z")]


# --- two calendar months ----------------------------------------------------------------------------------


def test_calendar_months_of_31_and_28_days(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app({"HEALTH_CHECK_INTERVAL": str(DAY)})
    shop_up = {"value": True}
    application.extensions["centinela"].health.register("shop", lambda: shop_up["value"], critical=True)
    health = application.extensions["centinela"].health
    moments = [jan(1) + DAY * i for i in range(60)] + [at(2, 10, 0), at(2, 10, 6)]  # daily to March 1
    for moment in sorted(moments):
        clock.set(moment)
        shop_up["value"] = not at(2, 10, 0) <= moment < at(2, 10, 6)
        health.run_round()
    clock.set(at(3, 1, 12))
    client = application.test_client()

    january = client.get(UPTIME + "?month=2026-01").get_json()
    assert january["window"] == {"label": "2026-01", "from": "2026-01-01T00:00:00.000Z",
                                 "to": "2026-02-01T00:00:00.000Z", "seconds": 31 * DAY,
                                 "measuredTo": "2026-02-01T00:00:00.000Z", "complete": True}
    assert january["uptime"]["percentage"] == 100.0
    assert january["sla"]["errorBudget"]["allowedMinutes"] == 44.64
    assert january["incidents"]["count"] == 0 and january["mttr"]["seconds"] is None

    february = client.get(UPTIME + "?month=2026-02").get_json()
    assert february["window"]["seconds"] == 28 * DAY
    assert february["sla"]["errorBudget"]["allowedMinutes"] == 40.32
    assert february["uptime"]["downSeconds"] == 6 * HOUR
    assert february["uptime"]["percentage"] == round(100 * (1 - 6 * HOUR / (28 * DAY)), 4) == 99.1071
    assert february["sla"]["errorBudget"]["consumedMinutes"] == 360.0
    assert february["incidents"]["count"] == 1
    assert (february["mttr"]["seconds"], february["mtbf"]["seconds"]) == (6 * HOUR, 28 * DAY - 6 * HOUR)
    assert february["coverage"]["unknownSeconds"] == 0.0
