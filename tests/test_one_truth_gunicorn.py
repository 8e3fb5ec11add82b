"""With a real `gunicorn -w 3` during an open incident, every worker answers the same figures:
the dashboard feed, the uptime report, the metrics export and the alert listing, read 20 times
each, are identical apart from the fields that move with time, and those move forward only."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from monitoring.clock import parse_timestamp
from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer

pytestmark = pytest.mark.slow

HEADERS = {"X-API-Key": METRICS_KEY}
READS = 20
ENDPOINTS = {
    "dashboard": "/api/monitoring/dashboard/data",
    "uptime": "/api/monitoring/uptime",
    "metrics": "/api/monitoring/metrics",
    "alerts": "/api/monitoring/alerts?action=active",
}

# Fields that move with time: the clock itself, durations of what is still going on, shares of a
# window that rolls forward, heartbeats and job runs. Each must be monotone over the reads (the
# reads are sequential, each answer computed after the one before). Everything else is identical.
MOVES_WITH_TIME = {
    "dashboard": [
        "generatedAt",
        "uptime.window.from", "uptime.window.to", "uptime.window.measuredTo",
        "uptime.uptime.downSeconds",
        "uptime.sla.errorBudget.consumed*", "uptime.sla.errorBudget.remaining*",
        "uptime.coverage.*", "uptime.uptime.coverage.*", "uptime.sla.coverage.*",
        "uptime.zones[*].lastSeen", "uptime.zones[*].instances[*].lastSeen",
        "incidents.open.durationSeconds", "incidents.open.duration",
        "incidents.recent[*].durationSeconds", "incidents.recent[*].duration",
        "performance.window.from", "performance.window.to",
        "performance.scope.coveredFrom", "performance.scope.internalRequests",
        "series.*.from", "series.*.to", "series.*.latest.from", "series.*.latest.to",
        "errors.window.from", "errors.window.to",
        "business.window.to",
    ],
    "uptime": [
        "uptime.downSeconds",
        "sla.errorRate.coveredFrom",
        "sla.errorBudget.consumed*", "sla.errorBudget.remaining*",
        "zones[*].lastSeen", "zones[*].instances[*].lastSeen",
        "incidents.open.durationSeconds", "incidents.open.duration",
        "incidents.recent[*].durationSeconds", "incidents.recent[*].duration",
        "mttr.seconds", "mttr.formatted",
        "coverage.known", "coverage.unknown", "coverage.knownSeconds", "coverage.unknownSeconds",
        "coverage.summary", "coverage.gaps[*].from", "coverage.gaps[*].seconds",
        "uptime.coverage.*", "sla.coverage.*", "sla.burnRates.coverage.*",
        "window.from", "window.to", "window.measuredTo",
    ],
    "metrics": [
        "timestamp", "window.from", "window.to",
        "system.scheduler.leader.expiresAt", "system.scheduler.jobs[*].lastRun",
        "performance.scope.coveredFrom", "performance.scope.internalRequests",
        "uptime.uptime.coverage", "uptime.uptime.down_seconds", "uptime.uptime.unknown_seconds",
        "uptime.error_budget.consumed_seconds", "uptime.error_budget.remaining_percentage",
        "uptime.mttr.seconds",
    ],
    "alerts": [],
}
# A verdict given once the window is measured enough (UPTIME_MIN_COVERAGE): null ("not enough
# data") until then, then a verdict that stays; "enough" goes from false to true, never back. A
# short window (the metrics export's 5 minutes) crosses the threshold within seconds, maybe
# during the reads.
# At any depth (``**``): the metrics export nests them deeper (``uptime.uptime.coverage.enough``).
SETTLES = ["**sla.compliance.*"]
MOVES_EVERYWHERE = ["**coverage.enough"]
# A trailing window read in whole minutes covers from the start of its first minute: its length
# rises within a minute and falls back at the next. Checked against the answer's own window instead.
COVERED_SECONDS = "performance.scope.coveredSeconds"
# Series points are keyed by their bucket: a new minute adds a bucket and drops the oldest.
SERIES_POINTS = re.compile(r"^series\.[^.]+\.points\[")
DURATION = re.compile(r"^(?=\d)(?:(\d+)d ?)?(?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+)s)?$")  # monitoring/durations.py


def list_key(item: Any) -> str | None:
    """Items of a list are addressed by what they are, not where they are, when they say."""
    if isinstance(item, dict):
        for key in ("at", "id", "name", "zone", "fingerprint", "service"):
            if isinstance(item.get(key), (str, int)):
                return f"{key}={item[key]}"
    return None


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{list_key(item) or index}]")
    else:
        yield path, value


def generic(path: str) -> str:
    """``zones[zone=default].lastSeen`` -> ``zones[*].lastSeen``: what the patterns above name."""
    return re.sub(r"\[[^\]]*\]", "[*]", path)


def matches(path: str, pattern: str) -> bool:
    """``*`` stands for any text within one name, ``**`` for any text at all; everything else,
    brackets included, is literal."""
    expression = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", r"[^.]*")
    return re.fullmatch(expression, generic(path)) is not None


def comparable(value: Any) -> Any:
    """Durations as seconds ("2m 3s" -> 123), so that a formatted duration can be seen moving backwards."""
    if isinstance(value, str):
        match = DURATION.match(value)
        if match:
            d, h, m, s = (int(x) if x else 0 for x in match.groups())
            return ((d * 24 + h) * 60 + m) * 60 + s
    return value


def settles(values: list[Any]) -> bool:
    """Null for a while (not judged yet), then one value that stays."""
    first = next((i for i, v in enumerate(values) if v is not None), len(values))
    return len({json.dumps(v) for v in values[first:]}) <= 1


def monotone(values: list[Any]) -> bool:
    values = [comparable(v) for v in values]
    kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v) for v in values}
    if any(v is None for v in values) or len(kinds) > 1:
        return False
    if isinstance(values[0], str) and not re.match(r"^\d{4}-\d\d-\d\dT", values[0]):
        return True  # a sentence with a figure in it ("measured for 2 min of 30 d"): its numbers are checked
    pairs = list(zip(values, values[1:], strict=False))
    return all(a <= b for a, b in pairs) or all(a >= b for a, b in pairs)


def differences(name: str, answers: list[dict[str, Any]]) -> list[str]:
    """What differs between the answers and should not, or moves and goes back."""
    flat = [dict(flatten(answer)) for answer in answers]
    patterns = MOVES_WITH_TIME[name]
    problems = []
    paths = sorted({path for answer in flat for path in answer})
    for path in paths:
        values = [answer.get(path, "<absent>") for answer in flat]
        if name == "dashboard" and SERIES_POINTS.match(path):
            present = [v for v in values if v != "<absent>"]
            # A bucket: complete ones never change, the filling one only grows.
            if len({json.dumps(v) for v in present}) > 1 and not (path.endswith((".seconds", ".complete"))
                                                                and monotone(present)):
                problems.append(f"{name} {path}: {values}")
            continue
        if len({json.dumps(v, sort_keys=True) for v in values}) == 1:
            continue
        if path == COVERED_SECONDS:
            continue  # see covered_seconds_agree
        if any(matches(path, pattern) for pattern in SETTLES) and settles(values):
            continue
        moves = any(matches(path, pattern) for pattern in patterns + MOVES_EVERYWHERE)
        if not moves:
            problems.append(f"{name} {path} differs: {values}")
        elif not monotone(values):
            problems.append(f"{name} {path} goes back and forth: {values}")
    return problems


def covered_seconds_agree(answer: dict[str, Any], to: str) -> bool:
    """``coveredSeconds`` is the time from ``coveredFrom`` to the end of the answer's own window."""
    scope = answer["performance"]["scope"]
    seconds = parse_timestamp(to) - parse_timestamp(scope["coveredFrom"])
    return abs(scope["coveredSeconds"] - seconds) <= 0.002


def read_all(url: str) -> dict[str, dict[str, Any]]:
    answers = {}
    for name, path in ENDPOINTS.items():
        # A new connection per request, so that whichever worker accepts it answers.
        response = requests.get(url + path, headers={**HEADERS, "Connection": "close"}, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        answers[name] = response.json()
    return answers


def test_every_worker_answers_the_same_figures_during_an_incident(
    gunicorn_server: Callable[..., Any], store_url: str
) -> None:
    with RecordingHTTPServer() as ticketing:
        ticketing.respond(500, {"error": "ticketing backend down"})
        server = gunicorn_server(
            env={
                "METRICS_API_KEY": METRICS_KEY,
                "ADMIN_API_KEY": ADMIN_KEY,
                "DATABASE_URL": store_url,
                "HEALTH_CHECKS": json.dumps([{"name": "ticketing", "type": "http", "url": ticketing.url + "/health",
                                              "critical": True, "timeout": 2}]),
                # The leader's first round, at start, finds the critical dependency down and opens the
                # incident; it vouches for 2.5 intervals, so no further round changes the store under us.
                "HEALTH_CHECK_INTERVAL": "600",
                "SYSTEM_SAMPLE_INTERVAL": "600",
                "ALERT_EVALUATION_INTERVAL": "1",
                "ALERT_GROUP_WAIT": "0",
                "ALERT_DATABASE_CHECKS": "ticketing",
                "METRICS_FLUSH_INTERVAL": "1",
                "LEASE_TTL": "6",
                "RATELIMIT_DEFAULT": "100000/minute",
                "RATELIMIT_EXPORT": "100000/minute",
            },
            workers=3,
        )

        def incident_open_and_alert_firing() -> bool:
            answers = read_all(server.url)
            firing = [a for a in answers["alerts"]["alerts"] if a["state"] == "firing"]
            return answers["uptime"]["incidents"]["open"] is not None and bool(firing)

        deadline = time.monotonic() + 30
        while not incident_open_and_alert_firing():
            assert time.monotonic() < deadline, f"no incident and firing alert after 30 s:\n{server.log()[-3000:]}"
            time.sleep(0.5)  # real workers run the rounds and evaluations on their own timers

        time.sleep(1.5)  # let the first flushes of the workers land: they are our own reads
        reads = [read_all(server.url) for _ in range(READS)]
        assert len(server.worker_pids()) == 3

    problems = []
    for name in ENDPOINTS:
        problems += differences(name, [answer[name] for answer in reads])
    assert problems == [], "\n".join(problems[:40])
    for answer in reads:
        assert covered_seconds_agree(answer["dashboard"], answer["dashboard"]["performance"]["window"]["to"])
        assert covered_seconds_agree(answer["metrics"], answer["metrics"]["window"]["to"])

    last = reads[-1]
    dashboard, uptime = last["dashboard"], last["uptime"]
    assert dashboard["view"] == "full"
    assert uptime["incidents"]["open"]["cause"] == "critical dependency down: ticketing (HTTP 500)"
    assert dashboard["incidents"]["open"] == uptime["incidents"]["open"] | {
        "durationSeconds": dashboard["incidents"]["open"]["durationSeconds"],
        "duration": dashboard["incidents"]["open"]["duration"]}
    assert [a["name"] for a in last["alerts"]["alerts"]] == ["DatabaseUnavailable"]
    assert [a["name"] for a in dashboard["alerts"]["active"]] == ["DatabaseUnavailable"]
    # The incident's duration is read at each answer's own moment: it grows with the answers' times.
    durations = [r["uptime"]["incidents"]["open"]["durationSeconds"] for r in reads]
    assert durations == sorted(durations) and durations[-1] > durations[0]
