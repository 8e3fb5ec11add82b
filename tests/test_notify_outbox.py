"""The outbox on SQLite and PostgreSQL, against a real local receiver, with an injected clock
and an injected random: retries with backoff and full jitter, Retry-After, no retry on 4xx,
the give-up horizon and its fallback notice, claims that stop double sends, recovery of a
send interrupted by a crash, and enqueueing inside the caller's transaction."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from sqlalchemy import select

from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from monitoring.notify.figures import delivery_report
from monitoring.notify.model import OutboundRequest
from monitoring.notify.outbox import DELIVERED, FAILED, GAVE_UP, PENDING, SENDING, Delivery, Outbox
from monitoring.notify.transport import HttpSender, SendResult
from monitoring.store.notify_tables import notify_deliveries
from tests.support.receiver import RecordingHTTPServer
from tests.test_notify_support import (  # noqa: F401  (fixtures)
    START,
    Steady,
    enqueue,
    make_alert,
    make_notification,
    make_outbox,
    receiver,
)

BASE = {"NOTIFY_BACKOFF_BASE": "4", "NOTIFY_BACKOFF_MAX": "20"}


def webhook_env(receiver: RecordingHTTPServer, **extra: str) -> dict[str, str]:
    return {"ALERT_WEBHOOK_URL": receiver.url + "/hook", **BASE, **extra}


def only(outbox: Outbox, key: str) -> Delivery:
    delivery = outbox.find(key)
    assert delivery is not None
    return delivery


def drive(outbox: Outbox, clock: ManualClock, key: str, limit: int = 500) -> Delivery:
    """Advance the clock to each next attempt and run the job, until the delivery is finished."""
    delivery = only(outbox, key)
    for _ in range(limit):
        if delivery.status not in (PENDING, SENDING):
            return delivery
        assert delivery.next_attempt_at is not None
        clock.set(max(clock.now(), delivery.next_attempt_at))
        outbox.deliver_due()
        delivery = only(outbox, key)
    raise AssertionError(f"not finished after {limit} runs: {delivery}")


# --- retries and backoff -----------------------------------------------------------------------------


def test_5xx_is_retried_with_exponential_backoff_and_full_jitter_then_delivered(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver), rng=Steady(0.5))
    receiver.respond(503, {"error": "maintenance"})
    (key,) = enqueue(outbox, make_notification())
    waits = []
    for attempt in range(1, 6):
        run = outbox.deliver_due()
        assert run.retried == 1, run
        delivery = only(outbox, key)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (PENDING, attempt, 503)
        assert delivery.last_error == "HTTP 503" and "maintenance" in delivery.last_answer
        waits.append(delivery.next_attempt_at - clock.now())
        assert outbox.deliver_due().retried == 0  # not due yet: nothing sent
        clock.advance(waits[-1])
    # 0.5 × min(20, 4 · 2^(n-1)): 2, 4, 8, then capped at 10.
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    receiver.respond(200)
    assert outbox.deliver_due().delivered == 1
    delivery = only(outbox, key)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DELIVERED, 6, None)
    requests = receiver.requests
    assert len(requests) == 6
    # The idempotency key, and the body, are the same on every attempt.
    assert {r.header("Idempotency-Key") for r in requests} == {key}
    assert {r.body for r in requests} == {requests[0].body}
    assert requests[0].json()["idempotencyKey"] == key


def test_jitter_comes_from_the_injected_random(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    draws = iter([0.0, 0.9])
    outbox = make_outbox(webhook_env(receiver), rng=lambda: next(draws))
    receiver.respond(500)
    (key,) = enqueue(outbox, make_notification())
    run = outbox.deliver_due()
    # A draw of 0 makes the retry due at once; it still waits for the next run, not a loop in this one.
    assert run.retried == 1 and len(receiver.requests) == 1
    assert only(outbox, key).next_attempt_at == clock.now()
    outbox.deliver_due()
    assert only(outbox, key).next_attempt_at == pytest.approx(clock.now() + 0.9 * 8)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(
    status: int, receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    receiver.respond(status)
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().retried == 1
    assert only(outbox, key).status == PENDING


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_fail_at_once_with_the_receivers_answer(
    status: int, receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    receiver.respond(status, {"status": "invalid event", "errors": ["Event object is invalid"]})
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().failed == 1
    clock.advance(86400 * 2)
    assert outbox.deliver_due().to_json() == {"delivered": 0, "retried": 0, "failed": 0, "gave_up": 0, "lost_claims": 0}
    delivery = only(outbox, key)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (FAILED, 1, status)
    assert "Event object is invalid" in delivery.last_answer and delivery.next_attempt_at is None
    assert len(receiver.requests) == 1


def test_retry_after_in_seconds_is_honoured(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    receiver.respond_429(120)
    (key,) = enqueue(outbox, make_notification())
    outbox.deliver_due()
    assert only(outbox, key).next_attempt_at == START + 120  # not the 2 s backoff
    receiver.respond(200)
    clock.advance(119.9)
    outbox.deliver_due()
    assert len(receiver.requests) == 1
    clock.advance(0.1)
    assert outbox.deliver_due().delivered == 1


def test_retry_after_as_an_http_date_is_honoured(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    when = format_datetime(datetime.fromtimestamp(START + 300, tz=UTC), usegmt=True)
    assert when == "Thu, 01 Jan 2026 00:05:00 GMT"
    receiver.respond(503, {"error": "down"}, {"Retry-After": when})
    (key,) = enqueue(outbox, make_notification())
    outbox.deliver_due()
    assert only(outbox, key).next_attempt_at == START + 300


def test_network_errors_and_timeouts_are_retried(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver, NOTIFY_TIMEOUT="0.3"))
    (key,) = enqueue(outbox, make_notification())
    receiver.refuse()
    outbox.deliver_due()
    refused = only(outbox, key)
    assert refused.status == PENDING and refused.last_status_code is None
    assert refused.last_error.startswith("connection failed")
    assert receiver.url not in refused.last_error  # the URL may hold a token: never stored
    receiver.resume()
    receiver.hang(5)
    clock.set(refused.next_attempt_at)
    outbox.deliver_due()
    timed_out = only(outbox, key)
    assert (timed_out.status, timed_out.attempts, timed_out.last_error) == (PENDING, 2, "timeout after 0.3s")
    assert timed_out.last_latency_ms < 2000
    receiver.respond(200)
    clock.set(timed_out.next_attempt_at)
    assert outbox.deliver_due().delivered == 1


# --- giving up -------------------------------------------------------------------------------------


def test_gives_up_at_the_horizon_visibly_and_tells_the_fallback_channel(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(
        receiver, NOTIFY_GIVE_UP_AFTER="1h", NOTIFY_BACKOFF_MAX="600",
        SLACK_WEBHOOK_URL=receiver.url + "/slack", NOTIFY_FALLBACK_CHANNEL="slack",
        NOTIFY_ROUTES='{"critical": ["webhook"]}',
    ), rng=Steady(0.9))
    receiver.route("/hook", 500, {"error": "receiver broken"})
    (key,) = enqueue(outbox, make_notification())
    before_horizon = drive(outbox, clock, key)
    assert before_horizon.status == GAVE_UP
    assert before_horizon.finished_at == START + 3600  # one last try exactly at the horizon, then no more
    assert before_horizon.last_attempt_at == START + 3600 and before_horizon.next_attempt_at is None
    hook_requests = receiver.wait_for(before_horizon.attempts, path="/hook")
    assert len(hook_requests) == before_horizon.attempts >= 10

    # The fallback channel is told, through the outbox, in the transaction that gave up
    # (and the same run delivers the notice).
    fallback = [d for d in outbox.page() if d.channel == "slack"]
    assert len(fallback) == 1 and fallback[0].status == DELIVERED
    assert fallback[0].summary.startswith("Could not notify webhook: Payment failure rate")
    assert fallback[0].created_at == START + 3600
    (notice,) = receiver.wait_for(1, path="/slack")
    assert "Could not notify webhook" in notice.json()["text"]
    assert f"idempotency key {key}" in notice.json()["blocks"][1]["text"]["text"]

    # ... and it is a metric.
    counts = outbox.counts_by_status()
    assert counts[GAVE_UP] == 1 and counts[DELIVERED] == 1
    report = delivery_report(outbox, TimeWindow(START, clock.now() + 1, "2h"))
    assert report.json["notifications"]["finishedInWindow"]["gaveUp"] == 1
    assert report.json["notifications"]["byStatus"]["gave_up"] == 1
    samples = {s.labels.get("status"): s.value for m in report.prometheus for s in m.samples if s.labels}
    assert samples["gave_up"] == 1 and samples["delivered"] == 1
    assert any(p.metric == "notifications.deliveries" and "status:gave_up" in p.tags and p.value == 1
               for p in report.datadog)

    # More time passes: nothing is sent to /hook again.
    clock.advance(86400)
    outbox.deliver_due()
    assert len(receiver.wait_for(0, path="/hook")) == before_horizon.attempts


def test_a_failed_fallback_notice_is_not_reported_again(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver, SLACK_WEBHOOK_URL=receiver.url + "/slack",
                                     NOTIFY_FALLBACK_CHANNEL="slack", NOTIFY_ROUTES='{"critical": ["webhook"]}'))
    receiver.respond(400, {"error": "no"})
    enqueue(outbox, make_notification())
    # The webhook refused, the notice to Slack was queued and refused too: no notice about the notice.
    assert outbox.deliver_due().failed == 2
    assert outbox.deliver_due().to_json()["failed"] == 0
    assert [(d.channel, d.status) for d in outbox.page()] == [("slack", FAILED), ("webhook", FAILED)]
    assert len(receiver.requests) == 2


def test_a_retry_after_beyond_the_horizon_gives_up_now(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver, NOTIFY_GIVE_UP_AFTER="10m"))
    receiver.respond_429(3600)
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().gave_up == 1
    assert only(outbox, key).status == GAVE_UP


# --- the outbox is transactional and idempotent ----------------------------------------------------


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    with pytest.raises(RuntimeError):
        with outbox.store.write() as conn:
            outbox.enqueue(conn, make_notification())
            raise RuntimeError("the alert change failed")  # so the notification must not exist either
    assert outbox.page() == []
    assert outbox.deliver_due().delivered == 0 and receiver.requests == []


def test_the_same_notification_enqueued_twice_is_sent_once(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    assert enqueue(outbox, make_notification()) == enqueue(outbox, make_notification())
    outbox.deliver_due()
    outbox.deliver_due()
    assert len(outbox.page()) == 1 and len(receiver.requests) == 1


def test_a_run_that_outlives_its_lease_stops_and_leaves_the_rest(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    for n in range(3):
        enqueue(outbox, make_notification(f"a1b2c3d4e5f60718:firing:{n + 1}"))
    answers = iter([True, False])  # still leader for the first send, then the lease is gone
    outbox.deliver_due(still_leader=lambda: next(answers, False))
    assert len(receiver.requests) == 1
    outbox.deliver_due()  # the next leader sends the other two
    assert len(receiver.requests) == 3


def test_the_stored_notification_is_sanitised(receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]) -> None:
    outbox = make_outbox(webhook_env(receiver))
    enqueue(outbox, make_notification("n:pii", "firing", make_alert(summary="refund for ana@example.com")))
    with outbox.store.read() as conn:
        payload, summary = conn.execute(select(notify_deliveries.c.payload, notify_deliveries.c.summary)).one()
    assert "ana@example.com" not in payload + summary and "[email]" in summary


def test_a_channel_removed_from_the_configuration_fails_its_pending_deliveries(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    before = make_outbox(webhook_env(receiver))
    (key,) = enqueue(before, make_notification())
    after_restart = make_outbox({"SLACK_WEBHOOK_URL": receiver.url + "/slack"})
    assert after_restart.deliver_due().failed == 1
    assert only(after_restart, key).last_error == "channel webhook is no longer configured"


# --- claims: no two senders, and recovery after a crash mid-send -------------------------------------


class CrashAfterSending:
    """The process is killed after the request went out and before the outcome was written."""

    def __init__(self, timeout: float) -> None:
        self.http = HttpSender(timeout)

    def send(self, request: OutboundRequest) -> SendResult:
        self.http.send(request)
        raise KeyboardInterrupt("SIGKILL stand-in")


def test_a_send_interrupted_by_a_crash_is_sent_again_after_the_claim_expires(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    env = webhook_env(receiver, NOTIFY_TIMEOUT="2")
    crashing = make_outbox(env, sender=CrashAfterSending(2))
    (key,) = enqueue(crashing, make_notification())
    with pytest.raises(KeyboardInterrupt):
        crashing.deliver_due()
    stuck = only(crashing, key)
    assert (stuck.status, stuck.attempts) == (SENDING, 1)

    restarted = make_outbox(env)  # a new process on the same store
    assert restarted.deliver_due().delivered == 0  # the claim (2 × 2 s + 5 s) has not expired
    clock.advance(restarted.policy.claim_ttl + 0.001)
    assert restarted.deliver_due().delivered == 1
    first, second = receiver.wait_for(2)
    # At least once: the receiver saw it twice, with one idempotency key to dedup on.
    assert first.header("Idempotency-Key") == second.header("Idempotency-Key") == key
    assert first.body == second.body
    assert only(restarted, key).attempts == 2


def test_a_sender_that_lost_its_claim_does_not_overwrite_the_outcome(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    env = webhook_env(receiver)
    other = make_outbox(env)

    class SlowSender:
        """So slow that its claim expires and another process delivers meanwhile; then it gets a 500."""

        def send(self, request: OutboundRequest) -> SendResult:
            clock.advance(other.policy.claim_ttl + 1)
            assert other.deliver_due().delivered == 1
            return SendResult(status=500, latency_ms=30_000.0, body="late")

    slow = make_outbox(env, sender=SlowSender())
    (key,) = enqueue(slow, make_notification())
    assert slow.deliver_due().lost_claims == 1
    delivery = only(slow, key)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DELIVERED, 2, 200)


def test_concurrent_delivery_jobs_send_each_notification_once(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    env = webhook_env(receiver)
    processes = [make_outbox(env) for _ in range(4)]
    keys = [k for i in range(40) for k in enqueue(processes[0], make_notification(f"fp-{i}:firing:1"))]
    start = threading.Barrier(len(processes))
    runs: list[Any] = []

    def job(outbox: Outbox) -> None:
        start.wait()
        runs.append(outbox.deliver_due())

    threads = [threading.Thread(target=job, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    requests = receiver.wait_for(40)
    assert sorted(r.header("Idempotency-Key") for r in requests) == sorted(keys)
    assert sum(run.delivered for run in runs) == 40
    assert processes[0].counts_by_status()[DELIVERED] == 40


# --- delivery at once, by the committing process -------------------------------------------------


def test_the_committing_process_and_the_delivery_job_send_a_row_once_between_them(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    env = webhook_env(receiver)
    committing, leader, other = (make_outbox(env) for _ in range(3))
    keys = [k for i in range(20) for k in enqueue(committing, make_notification(f"fp-{i}:firing:1"))]
    start = threading.Barrier(3)

    def at_once(outbox: Outbox) -> None:  # what PromptDelivery does in the committing process
        start.wait()
        for key in keys:
            outbox.deliver_key(key)

    def job() -> None:
        start.wait()
        leader.deliver_due()

    threads = [threading.Thread(target=at_once, args=(committing,)), threading.Thread(target=at_once, args=(other,)),
               threading.Thread(target=job)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.header("Idempotency-Key") for r in receiver.wait_for(20)) == sorted(keys)
    assert committing.counts_by_status()[DELIVERED] == 20
    assert committing.deliver_key(keys[0]).to_json()["delivered"] == 0  # delivered: nothing more to send
    assert len(receiver.requests) == 20


def test_a_row_sent_at_once_that_fails_is_left_to_the_delivery_job(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    (key,) = enqueue(outbox, make_notification())
    receiver.respond(503)
    assert outbox.deliver_key(key).retried == 1
    assert outbox.deliver_key(key).retried == 0  # not due again before its backoff
    receiver.respond(200)
    delivery = drive(outbox, clock, key)
    assert (delivery.status, delivery.attempts) == (DELIVERED, 2)


def test_prompt_delivery_sends_on_its_own_threads(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    from monitoring.notify.prompt import PromptDelivery

    outbox = make_outbox(webhook_env(receiver))
    prompt = PromptDelivery(outbox)
    outbox.prompt = prompt
    keys = [k for i in range(5) for k in enqueue(outbox, make_notification(f"fp-{i}:firing:1"))]
    receiver.hang(0.5)  # a slow receiver holds a sender thread, not the caller
    started = time.perf_counter()
    outbox.deliver_soon(keys)
    assert time.perf_counter() - started < 0.4
    assert len(receiver.wait_for(5, timeout=10)) == 5
    prompt.shutdown()
    assert outbox.counts_by_status()[DELIVERED] == 5


def test_cancelling_leaves_a_delivery_that_also_carries_an_alert_still_firing(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_outbox(webhook_env(receiver))
    both = make_notification("group-1:firing", "firing", make_alert("aaaaaaaaaaaaaaaa"), make_alert("bbbbbbbbbbbbbbbb"))
    (grouped,) = enqueue(outbox, both)
    (alone,) = enqueue(outbox, make_notification("cccccccccccccccc:firing:1", "firing", make_alert("cccccccccccccccc")))
    with outbox.store.write() as conn:
        assert outbox.cancel_unsent(conn, {"aaaaaaaaaaaaaaaa", "cccccccccccccccc"}) == 1
    assert only(outbox, alone).status == "cancelled" and only(outbox, grouped).status == PENDING
