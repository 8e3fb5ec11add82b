"""The outbox: notifications are written in the transaction of the change that causes them,
and the leader's delivery job sends them, at least once, with retries, until delivered or
given up on, visibly.

* ``enqueue(conn, notification)``: the alerting engine calls it with ITS OWN connection, inside
  the transaction that changes the alert, so the change and its notifications commit together.
  One row per (notification, channel), or per (notification, channel, alert) for channels
  that take one alert per event (PagerDuty, Sentry). Enqueueing the same notification id again
  adds nothing.
* ``deliver_soon(keys)``: after the caller's transaction has committed, the rows it wrote are
  sent at once from this process (``PromptDelivery``), each under the same claim as below, so a
  row is sent by whoever claims it first and by nobody else. A row that fails is retried by
  the leader's job like any other.
* ``deliver_due()``: claims one due row at a time with a conditional UPDATE (pending → sending,
  with a claim token and expiry), sends it, and records the outcome only if the claim is still
  its own. Two processes cannot claim the same row; a row whose process died mid-send becomes
  due again when its claim expires (the at-least-once path: receivers dedup on the
  Idempotency-Key, which is the same on every attempt).
* Outcomes: 2xx delivered; no answer (refused, timeout), 5xx, 408 and 429 retried with
  exponential backoff and full jitter, never sooner than Retry-After; any other status failed
  with the receiver's answer. E-mail speaks SMTP, where the classes mean the opposite: a 4xx
  reply ("try again later") is retried, a 5xx reply failed with the server's answer. An
  Apprise service that did not take the notice is retried (Apprise gives no code to tell a
  lasting refusal from a passing one), with what Apprise logged as the answer. A row still failing at its give-up time (created +
  NOTIFY_GIVE_UP_AFTER) is given up on. Failed and given-up deliveries are reported to the
  fallback channel, if one is configured.
* ``cancel_unsent(conn, fingerprints)``: when alerts resolve, a firing or escalation delivery
  about them that is still waiting (its receiver was down) is ``cancelled``: it would arrive
  after the resolve, and to PagerDuty it would open an incident that nothing closes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from monitoring.clock import Clock, isoformat
from monitoring.durations import HOUR
from monitoring.notify.channel import APPRISE, APPRISE_PREFIX, HTTP, SMTP, clip, expand_names, protocol_of
from monitoring.notify.channels import ChannelSet, build_channels
from monitoring.notify.model import DELIVERY_FAILURE, ESCALATED, FIRING, AlertSnapshot, Notification
from monitoring.notify.routing import Routes
from monitoring.notify.transport import (
    HttpSender,
    Sender,
    SendResult,
    is_retryable,  # noqa: F401  (moved to transport; importable here still)
    retry_after_seconds,
)
from monitoring.settings import Settings
from monitoring.store.database import Store
from monitoring.store.notify_tables import notify_deliveries as deliveries

log = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"
GAVE_UP = "gave_up"
CANCELLED = "cancelled"  # its alerts resolved before it could be delivered
STATUSES: tuple[str, ...] = (PENDING, SENDING, DELIVERED, FAILED, GAVE_UP, CANCELLED)

MAX_KEY_LENGTH = 255
MAX_ANSWER_CHARS = 500

@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0
    give_up_after: float = 24 * HOUR
    backoff_base: float = 5.0
    backoff_max: float = 600.0

    @property
    def claim_ttl(self) -> float:
        """How long a claimed row is ours: longer than one send can take (connect + read timeouts)."""
        return 2 * self.timeout + 5.0

    def backoff(self, attempts: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max, base · 2^(attempts-1)))."""
        ceiling: float = min(self.backoff_max, self.backoff_base * 2 ** min(attempts - 1, 60))
        return rng() * ceiling

    def to_json(self) -> dict[str, Any]:
        return {
            "timeoutSeconds": self.timeout,
            "giveUpAfterSeconds": self.give_up_after,
            "backoff": {"baseSeconds": self.backoff_base, "maxSeconds": self.backoff_max, "jitter": "full"},
            "retryOn": ["network error", "timeout", "5xx", "408", "429"],
            "retryOnSmtp": ["network error", "timeout", "4xx"],
            "retryOnApprise": ["any failure"],
            "claimSeconds": self.claim_ttl,
        }


@dataclass(frozen=True)
class Delivery:
    """One outbox row, as the deliveries listing shows it."""

    id: int
    idempotency_key: str
    notification_id: str
    channel: str
    event: str
    severity: str
    summary: str
    status: str
    attempts: int
    created_at: float
    give_up_at: float
    next_attempt_at: float | None
    last_attempt_at: float | None
    last_status_code: int | None
    last_error: str
    last_answer: str
    last_latency_ms: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | RowMapping) -> Delivery:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def _last_status(self) -> dict[str, Any]:
        smtp = protocol_of(self.channel) == SMTP
        shown: dict[str, Any] = {
            # An HTTP status only: e-mail's reply code has a field of its own, Apprise gives none.
            "httpStatus": self.last_status_code if protocol_of(self.channel) == HTTP else None,
            "error": self.last_error,
            "answer": self.last_answer,
            "latencyMs": self.last_latency_ms,
        }
        if smtp:
            shown["smtpCode"] = self.last_status_code
        return shown

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotencyKey": self.idempotency_key,
            "notificationId": self.notification_id,
            "channel": self.channel,
            "event": self.event,
            "severity": self.severity,
            "summary": self.summary,
            "status": self.status,
            "attempts": self.attempts,
            "createdAt": isoformat(self.created_at),
            "lastAttemptAt": isoformat(self.last_attempt_at),
            "lastStatus": self._last_status() if self.last_attempt_at is not None else None,
            "nextAttemptAt": isoformat(self.next_attempt_at) if self.status in (PENDING, SENDING) else None,
            "giveUpAt": isoformat(self.give_up_at),
            "finishedAt": isoformat(self.finished_at),
        }


@dataclass
class DeliveryRun:
    """What one run of the delivery job did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    gave_up: int = 0
    lost_claims: int = 0  # another process reclaimed the row while we were sending

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Claimed:
    id: int
    token: str
    idempotency_key: str
    channel: str
    summary: str
    payload: str
    attempts: int
    give_up_at: float


def idempotency_key(notification_id: str, channel: str, fingerprint: str | None = None) -> str:
    """``<notification id>/<channel>[/<alert fingerprint>]``, hashed when longer than 255 characters."""
    key = "/".join(p for p in (notification_id, channel, fingerprint) if p)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{channel}/sha256:{hashlib.sha256(key.encode()).hexdigest()}"


class Outbox:
    """Enqueue in the caller's transaction; deliver from the leader's job."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        channels: ChannelSet,
        routes: Routes,
        policy: DeliveryPolicy,
        sender: Sender | None = None,
        rng: Callable[[], float] = random.random,
        max_per_run: int = 200,
    ) -> None:
        self.store = store
        self.clock = clock
        self.channels = channels
        self.routes = routes
        self.policy = policy
        self.sender: Sender = sender or HttpSender(policy.timeout)
        self.rng = rng
        self.max_per_run = max_per_run
        # Sends the rows a committed transaction wrote, at once (monitoring.notify.prompt);
        # None: they wait for the delivery job.
        self.prompt: Callable[[Sequence[str]], None] | None = None

    @classmethod
    def from_settings(cls, store: Store, clock: Clock, settings: Settings, **kwargs: Any) -> Outbox:
        """Channels, routes and policy from the configuration; ``kwargs`` inject a sender or random."""
        channels = build_channels(settings)
        routes = Routes.from_settings(
            settings.notify_routes, settings.notify_escalation_channel, settings.notify_fallback_channel,
            channels.names,
        )
        policy = DeliveryPolicy(
            timeout=settings.notify_timeout,
            give_up_after=settings.notify_give_up_after,
            backoff_base=settings.notify_backoff_base,
            backoff_max=settings.notify_backoff_max,
        )
        outbox = cls(store, clock, channels, routes, policy, **kwargs)
        if settings.scheduler_enabled:  # a process that runs background work sends its own commits at once
            from monitoring.notify.prompt import PromptDelivery

            outbox.prompt = PromptDelivery(outbox)
        return outbox

    # --- enqueue (in the caller's transaction) ---------------------------------------------

    def has_receiver(self, notification: Notification) -> bool:
        """Whether enqueue would write at least one delivery for ``notification``."""
        return any(
            notification.event in self.channels.channels[name].events
            for name in self.routes.targets(notification, self.channels.names)
        )

    def enqueue(self, conn: Connection, notification: Notification) -> list[str]:
        """Write the notification's deliveries with ``conn`` (the caller's open transaction).

        Returns the idempotency keys of its deliveries (empty when no configured channel
        takes it). Safe to call twice with the same notification id.
        """
        clean = notification.sanitised()
        now = self.clock.now()
        keys: list[str] = []
        for name in self.routes.targets(clean, self.channels.names):
            channel = self.channels.channels[name]
            if clean.event not in channel.events:
                continue
            parts = [(clean.for_alert(a), a.fingerprint) for a in clean.alerts] if channel.per_alert else [(clean, None)]
            for part, fingerprint in parts:
                key = idempotency_key(clean.id, name, fingerprint)
                conn.execute(
                    self.store.insert(deliveries)
                    .values(
                        idempotency_key=key,
                        notification_id=clean.id,
                        channel=name,
                        event=clean.event,
                        severity=part.severity,
                        summary=clip(part.summary, 300),
                        payload=part.dumps(),
                        status=PENDING,
                        attempts=0,
                        created_at=now,
                        give_up_at=now + self.policy.give_up_after,
                        next_attempt_at=now,
                        last_error="",
                        last_answer="",
                    )
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                )
                keys.append(key)
        return keys

    def cancel_unsent(self, conn: Connection, fingerprints: Iterable[str]) -> int:
        """In the caller's transaction: cancel the waiting firing and escalation deliveries whose
        alerts are all among ``fingerprints`` (just resolved). Returns how many."""
        resolved = set(fingerprints)
        if not resolved:
            return 0
        now = self.clock.now()
        waiting = conn.execute(
            select(deliveries.c.id, deliveries.c.payload).where(
                deliveries.c.event.in_((FIRING, ESCALATED)),
                or_(deliveries.c.status == PENDING,
                    and_(deliveries.c.status == SENDING, deliveries.c.claim_expires_at < now)),
            )
        ).all()
        cancelled = 0
        for row_id, payload in waiting:
            alerts = json.loads(payload).get("alerts") or []
            if not alerts or not all(a.get("fingerprint") in resolved for a in alerts):
                continue
            cancelled += conn.execute(
                update(deliveries)
                .where(deliveries.c.id == row_id, deliveries.c.status.in_((PENDING, SENDING)))
                .values(status=CANCELLED, claim_token=None, claim_expires_at=None, next_attempt_at=None,
                        finished_at=now, last_error="cancelled: the alert resolved before this was delivered")
            ).rowcount
        return cancelled

    # --- delivery at once (the committing process) -------------------------------------------

    def deliver_soon(self, keys: Sequence[str]) -> None:
        """After a commit: hand the rows just written to the prompt sender, if there is one."""
        if keys and self.prompt is not None:
            try:
                self.prompt(list(keys))
            except Exception:  # the delivery job sends them anyway
                log.exception("prompt delivery could not start")

    def deliver_key(self, key: str) -> DeliveryRun:
        """Send the row ``key`` now if it is due and nobody else has claimed it."""
        run = DeliveryRun()
        claimed = self._claim(deliveries.c.idempotency_key == key)
        if isinstance(claimed, _Claimed):
            self._attempt(claimed, run)
        return run

    # --- delivery (the leader's job) ---------------------------------------------------------

    def deliver_due(self, still_leader: Callable[[], bool] = lambda: True) -> DeliveryRun:
        """Send every due delivery (at most ``max_per_run``), one claim at a time.

        ``still_leader`` is asked before each claim: a run that outlives its lease (slow
        receivers, a missed renewal) stops and leaves the rest to the new leader.
        """
        run = DeliveryRun()
        # A retry may be due at once (full jitter can draw ~0): it waits for the next run
        # rather than hammering the receiver in a loop within this one.
        attempted: set[int] = set()
        for _ in range(self.max_per_run):
            if not still_leader():
                break
            claimed = self._claim_next(attempted)
            if claimed is None:
                break
            if claimed is False:
                continue  # another process took the row between our SELECT and UPDATE
            attempted.add(claimed.id)
            try:
                self._attempt(claimed, run)
            except Exception:  # one row must not stop the others; its claim expires and it is due again
                log.exception("delivery %s failed unexpectedly; it is retried when its claim expires",
                              claimed.idempotency_key)
        return run

    def _due(self, now: float) -> Any:
        return or_(
            and_(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.status == SENDING, deliveries.c.claim_expires_at < now),
        )

    def _claim_next(self, skip: set[int]) -> _Claimed | None | Literal[False]:
        """Claim the most overdue row not in ``skip``: None when nothing is due, False when we lost a race."""
        return self._claim(deliveries.c.id.notin_(skip) if skip else None)

    def _claim(self, which: Any) -> _Claimed | None | Literal[False]:
        """Claim the most overdue due row that ``which`` selects (None: any)."""
        now = self.clock.now()
        token = uuid.uuid4().hex
        candidates = select(deliveries.c.id).where(self._due(now))
        if which is not None:
            candidates = candidates.where(which)
        with self.store.write() as conn:
            row_id = conn.execute(
                candidates.order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)  # PostgreSQL: skip rows another claimer holds
            ).scalar()
            if row_id is None:
                return None
            # The WHERE repeats the due condition: of two processes that picked the same row,
            # only the first UPDATE matches.
            claimed = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == row_id, self._due(now))
                .values(
                    status=SENDING,
                    claim_token=token,
                    claim_expires_at=now + self.policy.claim_ttl,
                    attempts=deliveries.c.attempts + 1,
                    last_attempt_at=now,
                )
            ).rowcount
            if claimed != 1:
                return False
            row = conn.execute(select(deliveries).where(deliveries.c.id == row_id)).mappings().one()
        return _Claimed(
            id=row["id"], token=token, idempotency_key=row["idempotency_key"], channel=row["channel"],
            summary=row["summary"], payload=row["payload"], attempts=row["attempts"], give_up_at=row["give_up_at"],
        )

    def _attempt(self, claimed: _Claimed, run: DeliveryRun) -> None:
        channel = self.channels.get(claimed.channel)
        if channel is None:
            result = SendResult(status=None, latency_ms=0.0, error=f"channel {claimed.channel} is no longer configured")
            self._record(claimed, FAILED, result, None, run)
            return
        try:
            notification = Notification.from_json(json.loads(claimed.payload))
            message = channel.render(notification, claimed.idempotency_key, self.clock.now())
        except Exception as exc:  # a row we cannot render will not render next time either
            log.exception("cannot render delivery %s", claimed.idempotency_key)
            self._record(claimed, FAILED, SendResult(None, 0.0, error=f"cannot render: {exc}"), None, run)
            return
        result = channel.transmit(message, self.sender)
        now = self.clock.now()
        if result.ok:
            self._record(claimed, DELIVERED, result, None, run)
        elif not result.retryable:
            self._record(claimed, FAILED, result, None, run)
        else:
            retry_at = self._retry_at(claimed, result, now)
            self._record(claimed, PENDING if retry_at is not None else GAVE_UP, result, retry_at, run)

    def _retry_at(self, claimed: _Claimed, result: SendResult, now: float) -> float | None:
        """When to try again, or None to give up (horizon reached, or Retry-After beyond it)."""
        if now >= claimed.give_up_at:
            return None
        earliest = now + (retry_after_seconds(result.retry_after, now) or 0.0)
        if earliest > claimed.give_up_at:
            return None
        wanted = max(now + self.policy.backoff(claimed.attempts, self.rng), earliest)
        return min(wanted, claimed.give_up_at)  # one last try at the horizon

    def _record(
        self, claimed: _Claimed, status: str, result: SendResult, retry_at: float | None, run: DeliveryRun
    ) -> None:
        now = self.clock.now()
        error = result.problem
        finished = status in (DELIVERED, FAILED, GAVE_UP)
        with self.store.write() as conn:
            updated = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == claimed.id, deliveries.c.claim_token == claimed.token)
                .values(
                    status=status,
                    claim_token=None,
                    claim_expires_at=None,
                    next_attempt_at=retry_at,
                    last_status_code=result.status,
                    last_error=error[:MAX_ANSWER_CHARS],
                    last_answer=result.body[:MAX_ANSWER_CHARS],
                    last_latency_ms=result.latency_ms,
                    finished_at=now if finished else None,
                )
            ).rowcount
            if updated != 1:
                # Our claim expired and another process took the row: its outcome stands.
                log.warning("delivery %s: claim lost while sending; outcome not recorded", claimed.idempotency_key)
                run.lost_claims += 1
                return
            notice_keys = self._report_failure(conn, claimed, status, error) if status in (FAILED, GAVE_UP) else []
        self.deliver_soon(notice_keys)
        if status == DELIVERED:
            run.delivered += 1
        elif status == PENDING:
            run.retried += 1
        elif status == FAILED:
            run.failed += 1
            log.warning("delivery %s to %s failed: %s", claimed.idempotency_key, claimed.channel, error)
        else:
            run.gave_up += 1
            log.error("delivery %s to %s given up after %d attempts: %s",
                      claimed.idempotency_key, claimed.channel, claimed.attempts, error)

    def _report_failure(self, conn: Connection, claimed: _Claimed, status: str, error: str) -> list[str]:
        """Tell the fallback channel, in the same transaction that records the failure; the notice's keys.

        A fallback of ``apprise`` means every Apprise channel but the one that failed."""
        fallback = self.routes.fallback
        original = Notification.from_json(json.loads(claimed.payload))
        told = [n for n in expand_names([fallback] if fallback else [], self.channels.names)
                if n != claimed.channel and self.channels.get(n) is not None]
        if not told or original.kind == DELIVERY_FAILURE:  # a failed failure report is not reported again
            return []
        digest = hashlib.sha256(claimed.idempotency_key.encode()).hexdigest()[:40]
        word = "given up" if status == GAVE_UP else "failed"
        notice = AlertSnapshot(
            fingerprint=f"undeliverable-{digest}",
            labels={
                "alertname": "NotificationUndeliverable",
                "severity": original.severity,
                "service": "centinela",
                "channel": claimed.channel,
            },
            annotations={
                "summary": clip(f"Could not notify {claimed.channel}: {claimed.summary}", 300),
                # Worded without "Key:" so that the sanitiser does not take the id for a secret.
                "description": f"Delivery {word} after {claimed.attempts} attempt(s): {error}. "
                f"It is listed under idempotency key {claimed.idempotency_key}",
            },
            starts_at=self.clock.now(),
        )
        return self.enqueue(conn, Notification(
            id=f"undeliverable-{digest}", event=FIRING, alerts=(notice,), channels=tuple(told), kind=DELIVERY_FAILURE,
        ))

    # --- reading ------------------------------------------------------------------------------

    def counts_by_status(self) -> dict[str, int]:
        """Deliveries kept in the store, by status (every status present, zero included)."""
        with self.store.read() as conn:
            rows = conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status)).all()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    def page(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Delivery]:
        """Newest first; page on with ``before_id`` = the last id of the previous page. ``channel``
        ``apprise`` selects the rows of every Apprise channel."""
        query = select(deliveries)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if channel == APPRISE:
            query = query.where(deliveries.c.channel.startswith(APPRISE_PREFIX, autoescape=True))
        elif channel is not None:
            query = query.where(deliveries.c.channel == channel)
        if before_id is not None:
            query = query.where(deliveries.c.id < before_id)
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit)).mappings().all()
        return [Delivery.from_row(row) for row in rows]

    def find(self, idempotency_key: str) -> Delivery | None:
        with self.store.read() as conn:
            row = conn.execute(
                select(deliveries).where(deliveries.c.idempotency_key == idempotency_key)
            ).mappings().first()
        return Delivery.from_row(row) if row else None

    def describe(self) -> dict[str, Any]:
        """Channels, routing and delivery policy, for the configuration view (secrets masked)."""
        return {
            "channels": self.channels.describe(),
            "routing": self.routes.to_json(),
            "delivery": self.policy.to_json(),
        }
