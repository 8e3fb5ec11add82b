"""Rate limits for Centinela's own endpoints, on the ``limits`` library (flask-limiter's engine).

Why not flask-limiter itself: its ``init_app`` is app-wide. It adds before/after hooks to
every request of the app (a host shop's included), writes its defaults into the app's config
and shares ``app.extensions["limiter"]`` with a limiter the host may run itself. Centinela
only limits its own blueprints, so it keeps the counting (``limits``' storage and fixed-window
strategy, the same grammar "120/minute" and the same Redis layout) and applies it from its
blueprints alone (``monitoring.api.limits``).

In-memory storage counts per process: with WORKERS=3 a client gets three times the limit.
Point RATELIMIT_STORAGE_URI at Redis to share one count across workers and hosts.

A storage that must answer is checked at start-up (``monitoring.dependencies``); one that stops
answering later lets requests pass unlimited (a Redis blip must not take monitoring down),
says so once in the log and shows as a degraded ``ratelimit`` dependency in health. While it
fails it is tried again every STORAGE_RETRY_SECONDS, not on every request.

``limits`` (3 MB with the asyncio and wrapt it imports) is loaded when a limit is first
counted: a worker with RATELIMIT_ENABLED=false never loads it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from monitoring.settings import RateLimitSettings

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.storage import Storage
    from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)

# While the storage fails, requests pass without asking it; it is asked again after this long
# (a Redis that does not answer at all would otherwise cost each request its connect timeout).
STORAGE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Budget:
    """Named limits (e.g. RATELIMIT_EXPORT) counted under one scope."""

    scope: str
    text: str  # "120/minute; 10/second", checked by the settings

    @classmethod
    def parse(cls, scope: str, text: str) -> Budget:
        return cls(scope, text)

    @cached_property
    def items(self) -> tuple[RateLimitItem, ...]:
        """The limits, parsed when first counted."""
        from limits import parse_many

        return tuple(parse_many(self.text))


@dataclass(frozen=True)
class Verdict:
    """What one hit found: whether it may pass, and the figures for the X-RateLimit-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the tightest window resets
    description: str = ""  # "3 per 1 minute"

    def retry_after(self, now: float) -> int:
        return max(1, int(self.reset_at - now) + 1)


class StorageUnavailable(RuntimeError):
    """The rate-limit storage (Redis) does not answer."""


class RateLimits:
    """Counting per (budget, identity) in one storage, built lazily per process (fork-safe)."""

    def __init__(
        self,
        storage_uri: str,
        budgets: dict[str, Budget] | None = None,
        enabled: bool = True,
        key_prefix: str = "centinela",
    ) -> None:
        self.storage_uri = storage_uri
        self.budgets = budgets or {}
        self.enabled = enabled
        self.key_prefix = key_prefix
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._storage: Storage | None = None
        self._strategy: FixedWindowRateLimiter | None = None
        self._failing = False
        self._retry_at = 0.0  # time.monotonic() when a failing storage is asked again

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> RateLimits:
        """From its own section of the settings (RATELIMIT_*)."""
        return cls(
            settings.ratelimit_storage_uri,
            {
                "default": Budget.parse("default", settings.ratelimit_default),
                "health": Budget.parse("health", settings.ratelimit_health),
                "export": Budget.parse("export", settings.ratelimit_export),
                "events": Budget.parse("events", settings.ratelimit_events),
                "login": Budget.parse("dashboard-login", settings.ratelimit_login),
                "ingest": Budget.parse("ingest", settings.ratelimit_ingest),
                "ingest_address": Budget.parse("ingest-address", settings.ratelimit_ingest_address),
            },
            settings.ratelimit_enabled,
            settings.ratelimit_key_prefix,
        )

    @property
    def shared(self) -> bool:
        """Whether every worker and host counts together (not per process)."""
        return not self.storage_uri.startswith("memory://")

    def _limiter(self) -> FixedWindowRateLimiter:
        # The in-memory storage runs a timer thread and Redis clients hold sockets: a forked
        # worker builds its own rather than use its parent's.
        pid = os.getpid()
        if self._strategy is None or self._pid != pid:
            with self._lock:
                if self._strategy is None or self._pid != pid:
                    from limits.storage import Storage, storage_from_string
                    from limits.strategies import FixedWindowRateLimiter

                    storage = storage_from_string(self.storage_uri)
                    assert isinstance(storage, Storage)  # a synchronous URI: the async ones are "async+..."
                    self._storage = storage
                    self._strategy = FixedWindowRateLimiter(storage)
                    self._pid = pid
        assert self._strategy is not None
        return self._strategy

    def check_storage(self) -> None:
        """Raise StorageUnavailable when the storage does not answer (called at start-up)."""
        try:
            self._limiter()
            ok = self._storage.check() if self._storage is not None else True
        except Exception as exc:  # redis raises its own connection errors
            raise StorageUnavailable(_first_line(exc)) from None
        if not ok:
            raise StorageUnavailable(self._why_not_answering())

    def _why_not_answering(self) -> str:
        """limits' check() only says False: ask the Redis client itself for the reason."""
        client = getattr(self._storage, "storage", None)
        ping = getattr(client, "ping", None)
        if ping is None:
            return "no answer"
        try:
            ping()
        except Exception as exc:
            text = _first_line(exc).lower()
            for marker, reason in (("refused", "connection refused"), ("timed out", "timed out"),
                                   ("timeout", "timed out"), ("name or service", "name resolution failed"),
                                   ("authentication", "authentication failed"), ("auth", "authentication failed")):
                if marker in text:
                    return reason
            return type(exc).__name__
        return "no answer"

    def note_unavailable_at_start(self) -> None:
        """The storage did not answer at start-up and the operator chose to start anyway: count it as failing."""
        self._failing = True
        self._retry_at = time.monotonic() + STORAGE_RETRY_SECONDS

    def _skipping(self) -> bool:
        """Whether to let this request pass without asking a storage that failed a moment ago."""
        return self._failing and time.monotonic() < self._retry_at

    def _identity(self, budget: Budget, identity: str) -> tuple[str, ...]:
        return (self.key_prefix, budget.scope, identity)

    def hit(self, budget: Budget, identity: str, now: float | None = None) -> Verdict | None:
        """Count one request; the verdict of the tightest limit, or None when limiting is off or
        the storage fails (fail open: a Redis blip must not take monitoring down with it)."""
        if not self.enabled or not budget.items or self._skipping():
            return None
        key = self._identity(budget, identity)
        try:
            limiter = self._limiter()
            verdicts = []
            for item in budget.items:
                allowed = limiter.hit(item, *key)
                stats = limiter.get_window_stats(item, *key)
                verdicts.append(Verdict(allowed, item.amount, stats.remaining, stats.reset_time, str(item)))
        except Exception:
            self._note_failure()
            return None
        self._note_recovery()
        refused = [v for v in verdicts if not v.allowed]
        if refused:
            return max(refused, key=lambda v: v.reset_at)
        return min(verdicts, key=lambda v: (v.remaining, v.reset_at))

    def exhausted(self, budget: Budget, identity: str) -> bool:
        """Whether the next hit would be refused, without counting one."""
        if not self.enabled or not budget.items or self._skipping():
            return False
        key = self._identity(budget, identity)
        try:
            limiter = self._limiter()
            result = not all(limiter.test(item, *key) for item in budget.items)
        except Exception:
            self._note_failure()
            return False
        self._note_recovery()
        return result

    def count(self, budget: Budget, identity: str) -> None:
        """Count one event (a failed sign-in) against the budget."""
        self.hit(budget, identity)

    def reset_in(self, budget: Budget, identity: str, now: float | None = None) -> int:
        """Seconds until every window of the budget has reset for this identity."""
        now = time.time() if now is None else now
        key = self._identity(budget, identity)
        try:
            limiter = self._limiter()
            reset = max(limiter.get_window_stats(item, *key).reset_time for item in budget.items)
        except Exception:
            return 60
        return max(1, int(reset - now) + 1)

    def _note_failure(self) -> None:
        self._retry_at = time.monotonic() + STORAGE_RETRY_SECONDS
        if not self._failing:
            self._failing = True
            log.warning("rate-limit storage does not answer; requests pass unlimited until it does")

    def _note_recovery(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate-limit storage answers again; limits apply")

    @property
    def failing(self) -> bool:
        """Whether the storage failed at its last use (limits are not applied meanwhile)."""
        return self.enabled and self._failing


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return " ".join(text[0].split())[:200] if text else type(error).__name__
