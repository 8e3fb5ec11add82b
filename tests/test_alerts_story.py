"""The shop's story, end to end, through a real `gunicorn -w 3` serving a festival shop that
embeds Centinela (tests/support/festival.py), with real local receivers for the webhook, Slack,
PagerDuty (PAGERDUTY_EVENTS_URL) and the escalation webhook, a local Stripe and a local TCP port
for the orders database.

The configuration is the default one, with only intervals shortened by the environment (health
rounds, evaluations, flushes, samples, the breaker's reset, the high and medium group waits, the
figures' windows), plus what docs/alerting.md says an operator does: the orders database named in
ALERT_DATABASE_CHECKS, and, through update_rule, the rules' own `for` / `keep_firing_for` made
short (and the memory threshold moved below and back above the machine's real use, since a test
cannot fill the machine's memory).

1. action=test to PagerDuty: its test incident is resolved at once.
2. Stripe answers 500: one critical notice on every channel within 2 s of the evaluation that saw
   it, and one escalation; Stripe recovers: only resolves follow.
3. Each of the five default rules fires under its condition and resolves after it: slow
   responses, an error spike, payment failures, the orders database refusing, memory use.
   After each recovery, nothing but that alert's resolves arrives (counted per channel).

Real processes: the test polls the receivers with deadlines; it never sleeps waiting for a tick,
except a short quiet spell after each recovery to show that nothing more arrives.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.gunicorn import GunicornServer
from tests.support.receiver import RecordedRequest, RecordingHTTPServer, SwitchableTCPServer

pytestmark = pytest.mark.slow

ALERTS = "/api/monitoring/alerts"
ROUTING_KEY = "R0123456789abcdef0123456789abcd1"
PAGED = ("webhook", "slack", "pagerduty")  # critical and high go there; critical escalates too
MEDIUM = ("webhook", "slack")
QUIET_SPELL = 2.0  # four evaluation intervals: whatever was still to come would have come
DEADLINE = 30.0


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Notice:
    channel: str
    event: str
    names: frozenset[str]
    at: float
    alert_start: float | None = None


class Receivers:
    """The four receivers, and what they got as notices (event and alert names per request)."""

    def __init__(self) -> None:
        self.servers = {name: RecordingHTTPServer() for name in ("webhook", "slack", "pagerduty", "escalation")}

    def __enter__(self) -> Receivers:
        for server in self.servers.values():
            server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for server in self.servers.values():
            server.stop()

    def env(self) -> dict[str, str]:
        return {
            "ALERT_WEBHOOK_URL": self.servers["webhook"].url + "/hook",
            "SLACK_WEBHOOK_URL": self.servers["slack"].url + "/services/T000/B000/XXXX",
            "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "PAGERDUTY_EVENTS_URL": self.servers["pagerduty"].url + "/v2/enqueue",
            "ESCALATION_WEBHOOK_URL": self.servers["escalation"].url + "/escalate",
        }

    def notices(self) -> list[Notice]:
        """Every notice so far. Slack and PagerDuty bodies do not name the alert the way the webhook
        does: the notification id in the Idempotency-Key joins them to the webhook's body."""
        by_notification: dict[str, frozenset[str]] = {}
        by_fingerprint: dict[str, str] = {}
        found: list[Notice] = []
        for channel in ("webhook", "escalation"):
            for request in self.servers[channel].requests:
                body = request.json()
                names = frozenset(a["labels"]["alertname"] for a in body["alerts"])
                by_notification[body["idempotencyKey"].rsplit("/", 1)[0]] = names
                by_fingerprint.update({a["fingerprint"]: a["labels"]["alertname"] for a in body["alerts"]})
                start = epoch(body["alerts"][0]["startsAt"])
                found.append(Notice(channel, body["event"], names, request.received_at, start))
        for request in self.servers["slack"].requests:
            notification = _key(request).rsplit("/", 1)[0]
            found.append(Notice("slack", notification.split(":")[1], by_notification.get(notification, frozenset()),
                                request.received_at))
        for request in self.servers["pagerduty"].requests:
            body = request.json()
            name = by_fingerprint.get(body["dedup_key"]) or body.get("payload", {}).get("class", "")
            event = {"trigger": "firing", "resolve": "resolved", "acknowledge": "acknowledged"}[body["event_action"]]
            found.append(Notice("pagerduty", event, frozenset({name}), request.received_at))
        return found

    def since(self, moment: float) -> list[Notice]:
        return [n for n in self.notices() if n.at >= moment]


def _key(request: RecordedRequest) -> str:
    return request.header("Idempotency-Key") or ""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


class Shop:
    """The shop as its customers and its operator use it."""

    def __init__(self, server: GunicornServer) -> None:
        self.server = server
        self.session = requests.Session()

    def get(self, path: str, n: int = 1, parallel: int = 1) -> None:
        def one(_: int) -> int:
            with requests.Session() as session:
                return session.get(self.server.url + path, timeout=30).status_code
        if parallel > 1:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                list(pool.map(one, range(n)))
        else:
            for _ in range(n):
                self.session.get(self.server.url + path, timeout=30)

    def payments(self, succeeded: int, failed: int) -> None:
        events = [{"type": "payment", "outcome": "succeeded", "amount": 2500, "currency": "EUR", "provider": "stripe"}
                  for _ in range(succeeded)]
        events += [{"type": "payment", "outcome": "failed", "amount": 2500, "currency": "EUR", "provider": "stripe",
                    "failure_code": "card_declined"} for _ in range(failed)]
        answer = self.session.post(self.server.url + "/api/monitoring/events", json={"events": events},
                                   headers={"X-API-Key": METRICS_KEY}, timeout=30)
        assert answer.status_code in (200, 201), answer.text

    def admin(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(self.server.url + ALERTS, json=body, headers={"X-Admin-Key": ADMIN_KEY}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def rule(self, name: str, **changes: Any) -> None:
        self.admin({"action": "update_rule", "rule": {"name": name, **changes}})

    def health_since(self, moment: float) -> str:
        """The store's health results and breakers since ``moment``: what a failed assertion on the
        notices needs to tell a real flap from a test race."""
        with sqlite3.connect(f"file:{self.server.workdir / 'var' / 'centinela.db'}?mode=ro", uri=True) as db:
            results = db.execute("SELECT id, service, status, checked_at, error FROM health_results "
                                 "WHERE checked_at >= ? ORDER BY id", (moment,)).fetchall()
            breakers = db.execute("SELECT * FROM circuit_breakers").fetchall()
        return "\n".join(["health results:", *map(repr, results), "breakers:", *map(repr, breakers)])

    def active(self) -> list[dict[str, Any]]:
        return self.session.get(self.server.url + f"{ALERTS}?action=active", headers={"X-API-Key": METRICS_KEY},
                                timeout=30).json()["alerts"]  # type: ignore[no-any-return]


@pytest.fixture
def story(tmp_path: Any) -> Iterator[tuple[Shop, Receivers, RecordingHTTPServer, SwitchableTCPServer]]:
    with Receivers() as receivers, RecordingHTTPServer() as stripe, SwitchableTCPServer() as orders_db:
        server = GunicornServer(tmp_path / "shop", workers=3, app="tests.support.festival:app", env={
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            **receivers.env(),
            "STRIPE_SECRET_KEY": "sk_test_story0123456789abcdef",
            "STRIPE_API_BASE": stripe.url,
            "HEALTH_CHECKS": json.dumps([{"name": "orders-db", "type": "tcp", "host": "127.0.0.1",
                                          "port": orders_db.port, "timeout": 0.5, "critical": True}]),
            "ALERT_DATABASE_CHECKS": "database,orders-db",
            "DASHBOARD_PUBLIC": "true",  # the shop's operators read health without a key
            # Intervals, shortened:
            "HEALTH_CHECK_INTERVAL": "0.5",
            "ALERT_EVALUATION_INTERVAL": "0.5",
            "METRICS_FLUSH_INTERVAL": "0.25",
            "SYSTEM_SAMPLE_INTERVAL": "0.5",
            "BREAKER_RESET_TIMEOUT": "0.5",
            "LEASE_TTL": "3",
            "ALERT_GROUP_WAIT": '{"high": "0.5s", "medium": "0.5s"}',
            "ALERT_GROUP_INTERVAL": '{"high": "0.5s", "medium": "0.5s"}',
            "ALERT_ERROR_RATE_WINDOW": "1m",
            "ALERT_API_P95_WINDOW": "1m",
            "ALERT_PAYMENT_FAILURE_RATE_WINDOW": "1m",
            "ALERT_MEMORY_USAGE_WINDOW": "1m",
            "RATELIMIT_ENABLED": "false",
        })
        server.start()
        try:
            yield Shop(server), receivers, stripe, orders_db
        finally:
            server.stop()


def fired_everywhere(receivers: Receivers, name: str, since: float, channels: tuple[str, ...],
                     escalates: bool) -> Callable[[], bool]:
    def done() -> bool:
        got = receivers.since(since)
        fired = {n.channel for n in got if n.event == "firing" and name in n.names}
        paged = any(n.channel == "escalation" and n.event == "escalated" and name in n.names for n in got)
        return set(channels) <= fired and (paged or not escalates)
    return done


def resolved_everywhere(receivers: Receivers, name: str, since: float, channels: tuple[str, ...]) -> Callable[[], bool]:
    def done() -> bool:
        resolved = {n.channel for n in receivers.since(since) if n.event == "resolved" and name in n.names}
        return set(channels) <= resolved
    return done


def episode(shop: Shop, receivers: Receivers, name: str, channels: tuple[str, ...], escalates: bool,
            breach: Callable[[], None], recover: Callable[[], None]) -> list[Notice]:
    """Breach, wait for the alert on its channels; recover, wait for its resolves; then show that
    nothing but those resolves came after the recovery. Returns the firing notices."""
    started = time.time()
    breach()
    wait_until(fired_everywhere(receivers, name, started, channels, escalates), f"{name} firing")
    firing = [n for n in receivers.since(started) if n.event in ("firing", "escalated")]
    assert {n.names for n in firing} == {frozenset({name})}, firing  # nothing else fired meanwhile
    recovered = time.time()
    recover()
    told = channels + (("escalation",) if escalates else ())
    wait_until(resolved_everywhere(receivers, name, recovered, told), f"{name} resolved")
    time.sleep(QUIET_SPELL)
    after = receivers.since(recovered)
    if sorted((n.channel, n.event) for n in after) != sorted((c, "resolved") for c in told):
        # Printed in full with the failure (an assertion message would be cut short).
        hooks = [(r.received_at, r.json()["event"], [(a["fingerprint"], a["labels"], a["startsAt"]) for a in r.json()["alerts"]])
                 for r in receivers.servers["webhook"].requests if r.received_at >= started]
        print(f"recovered at {recovered:.3f}", *after, "webhook bodies since the breach:", *hooks,
              shop.health_since(started - 1), sep="\n")
    assert sorted((n.channel, n.event) for n in after) == sorted((c, "resolved") for c in told), after
    assert all(n.names == frozenset({name}) for n in after), after
    return firing


def test_the_shops_story(story: tuple[Shop, Receivers, RecordingHTTPServer, SwitchableTCPServer]) -> None:
    shop, receivers, stripe, orders_db = story
    wait_until(lambda: shop.session.get(shop.server.url + "/api/health/check", timeout=10).json()["status"]
               == "healthy", "the first healthy round")

    # 1. The PagerDuty test incident is resolved at once, under a key of its own.
    tested = shop.admin({"action": "test", "channel": "pagerduty"})
    assert tested["ok"] and tested["results"][0]["resolve"]["ok"]
    trigger, resolve = [r.json() for r in receivers.servers["pagerduty"].requests]
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] and trigger["dedup_key"].startswith("centinela-test-")
    for server in receivers.servers.values():
        server.clear()

    # 2. Stripe down: one critical notice per channel within 2 s of the evaluation that saw it, one page.
    firing = episode(shop, receivers, "StripeUnavailable", PAGED, True,
                     breach=lambda: stripe.respond(500, {"error": {"message": "upstream"}}),
                     recover=lambda: stripe.respond(200, {"available": []}))
    assert sorted(n.channel for n in firing) == ["escalation", "pagerduty", "slack", "webhook"]
    evaluated_at = next(n.alert_start for n in firing if n.channel == "webhook")
    assert evaluated_at is not None
    for notice in firing:
        assert notice.at - evaluated_at <= 2.0, (notice.channel, notice.at - evaluated_at)

    # 3. The five default rules, each under its condition.
    shop.rule("SlowApiResponse", **{"for": "0"})
    episode(shop, receivers, "SlowApiResponse", MEDIUM, False,
            breach=lambda: (shop.get("/tickets?delay_ms=2100", 10, parallel=10), shop.get("/tickets", 20)),
            recover=lambda: shop.get("/tickets", 400))  # slow ones now under 5 % of the window
    episode(shop, receivers, "HighErrorRate", PAGED, False,
            breach=lambda: shop.get("/checkout?fail=1", 30),
            recover=lambda: shop.get("/checkout", 700))
    shop.rule("PaymentFailures", keep_firing_for="0")
    episode(shop, receivers, "PaymentFailures", PAGED, True,
            breach=lambda: shop.payments(succeeded=10, failed=2),
            recover=lambda: shop.payments(succeeded=300, failed=0))
    episode(shop, receivers, "DatabaseUnavailable", PAGED, True,
            breach=orders_db.refuse, recover=orders_db.accept)
    shop.rule("HighMemoryUsage", **{"for": "0"})
    episode(shop, receivers, "HighMemoryUsage", MEDIUM, False,
            breach=lambda: shop.rule("HighMemoryUsage", threshold=0.1),  # below this machine's real use
            recover=lambda: shop.rule("HighMemoryUsage", threshold=100))

    assert shop.active() == []
    total = {channel: sum(1 for n in receivers.notices() if n.channel == channel) for channel in receivers.servers}
    # Webhook and Slack: a firing and a resolve for each of the six alerts; PagerDuty: for the four
    # critical and high ones; the escalation webhook: a page and a resolve for the three critical ones.
    assert total == {"webhook": 12, "slack": 12, "pagerduty": 8, "escalation": 6}
