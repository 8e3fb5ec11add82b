"""HealthService: runs the checks (in parallel, each with its own deadline), stores what they find,
and answers from the store. One per app; the health blueprint's install() builds it.

While the store does not answer, the rounds go on (run by the process that led when it went,
see ``monitoring.scheduler``) and are kept in memory, up to MAX_PENDING_ROUNDS, with the
database marked unhealthy ("store unavailable") when its own probe got through; they are
written, oldest first, when the store returns, so the timeline shows the outage as down time
and an incident. Answers list the parts this process observes itself while they fail: the
``store`` (unhealthy, critical) and, through ``live_dependencies``, the rate-limit storage.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitoring.clock import Clock
from monitoring.health.checks import DATASTORE, Check, Probe, configured_checks, custom_probe
from monitoring.health.circuit import (
    HALF_OPEN,
    HALF_OPEN_REFUSAL,
    BreakerPolicy,
    CircuitBreakers,
    CircuitOpenError,
    Permit,
    open_refusal,
)
from monitoring.health.definitions import DEFAULT_TIMEOUT, MAX_TIMEOUT
from monitoring.health.events import HealthEvent, list_events, opening_error
from monitoring.health.registry import CustomCheck, CustomChecks, custom_check
from monitoring.health.report import build_category_report
from monitoring.health.results import (
    CheckResult,
    ExpectedService,
    HealthSnapshot,
    ServiceHealth,
    latest_round_at,
    read_snapshot,
    save_results,
    window_stats,
)
from monitoring.health.status import UNHEALTHY, UNKNOWN
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.settings import Settings
from monitoring.store.database import Store, is_store_unavailable
from monitoring.store.lease import LeaderLease

log = logging.getLogger(__name__)

# A probe's own timeout (requests, socket) normally ends it; this slack covers the time between
# its deadline and ours before we stop waiting and report it timed out.
DEADLINE_SLACK = 0.5
CIRCUIT_OPEN_ERROR = open_refusal(None)  # "circuit open: not called", when no opening error is on record
STILL_RUNNING_ERROR = "previous check still running"
STORE_UNAVAILABLE_ERROR = "store unavailable"
# A lease row held while a round runs; it outlives the slowest check, then frees itself.
ROUND_LOCK = "health_round"
ROUND_LOCK_MARGIN = 10.0
STORE_SERVICE = "store"  # Centinela's own store, listed while it does not answer
DATABASE_SERVICE = "database"  # the configured check that probes the store
# Rounds kept while the store is out: a day at the default 30 s interval (a few MB). Beyond it
# the oldest go, and that stretch reads "unknown" afterwards, never "up".
MAX_PENDING_ROUNDS = 2880


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]


class _StillPending(Exception):
    """Older rounds are still waiting for the store: a newer one must not be written before them."""


class HealthService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        max_pending_rounds: int = MAX_PENDING_ROUNDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.breakers = CircuitBreakers(
            store,
            clock,
            BreakerPolicy(
                failure_threshold=settings.breaker_failure_threshold,
                reset_timeout=settings.breaker_reset_timeout,
                success_threshold=settings.breaker_success_threshold,
            ),
        )
        self.custom = CustomChecks()
        self._configured = configured_checks(store, settings)
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._warned_duplicates: set[str] = set()
        # Called with each round's results once they are stored (the uptime timeline folds them).
        self.round_listeners: list[Callable[[list[CheckResult]], object]] = []
        # Rounds not stored yet (the store was out), oldest first; written by save_pending().
        self._pending: deque[list[CheckResult]] = deque(maxlen=max_pending_rounds)
        self._pending_lock = threading.Lock()
        self._dropped_warned = False
        self._unreleased_lock: LeaderLease | None = None
        # Parts this process observes itself (the rate-limit storage): each returns its entry
        # while it fails, None while it answers.
        self.live_dependencies: list[Callable[[float], ServiceHealth | None]] = []

    # --- what is checked -------------------------------------------------------------------

    def register(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        critical: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        latency_threshold_ms: float | None = None,
    ) -> None:
        """Add a custom Python check to this app's rounds (ValueError if the name is taken)."""
        check = custom_check(name, fn, critical=critical, timeout=timeout, latency_threshold_ms=latency_threshold_ms)
        self.ensure_name_free(name)
        self.custom.add(check)

    def unregister(self, name: str) -> bool:
        return self.custom.remove(name)

    def ensure_name_free(self, name: str) -> None:
        if name in {c.name for c in self._configured} or name in self.custom.names():
            raise ValueError(f"a health check named {name!r} already exists")

    def checks(self) -> list[Check]:
        """Configured checks first (database, stripe, brevo, HEALTH_CHECKS), then custom ones."""
        checks = list(self._configured)
        taken = {c.name for c in checks}
        for custom in self.custom.all():
            if custom.name in taken:
                if custom.name not in self._warned_duplicates:
                    self._warned_duplicates.add(custom.name)
                    log.warning("custom health check %r ignored: a configured check has that name", custom.name)
                continue
            taken.add(custom.name)
            checks.append(_as_check(custom))
        return checks

    def service_names(self) -> list[str]:
        return [c.name for c in self.checks()]

    # --- breakers for the host app ---------------------------------------------------------------

    def breaker(self, name: str, ignore: tuple[type[BaseException], ...] = ()) -> AbstractContextManager[Permit]:
        """``with health.breaker("stripe"): ...``: CircuitOpenError while open; the block's outcome counts."""
        return self.breakers.guard(name, ignore)

    # --- a round ---------------------------------------------------------------------------------

    def run_round(self) -> list[CheckResult]:
        """Run every check once, in parallel, each within its own timeout; store the results."""
        checks = self.checks()
        checked_at = self.clock.now()
        outcomes: dict[str, Probe] = {}
        permits: dict[str, Permit] = {}
        for check in checks:
            if self._is_in_flight(check.name):
                outcomes[check.name] = Probe.failed(STILL_RUNNING_ERROR)
            elif check.uses_breaker:
                try:
                    permits[check.name] = self.breakers.acquire(check.name)
                except CircuitOpenError as refused:
                    outcomes[check.name] = Probe.failed(self._refusal(check.name, refused))
                except SQLAlchemyError as error:
                    if not is_store_unavailable(error):
                        raise
                    # The breakers live in the store: without it the check is simply made.
        outcomes.update(self._probe_all([c for c in checks if c.name not in outcomes]))
        results = [
            CheckResult(
                service=check.name,
                status=outcomes[check.name].status,
                critical=check.critical,
                component_type=check.component_type,
                response_time_ms=outcomes[check.name].response_time_ms,
                error=outcomes[check.name].error,
                checked_at=checked_at,
            )
            for check in checks
        ]
        try:
            for result in results:
                permit = permits.get(result.service)
                if permit is None:
                    continue
                if result.status == UNHEALTHY:
                    self.breakers.record_failure(permit, result.error)
                else:  # healthy or degraded: the dependency answered
                    self.breakers.record_success(permit)
            self.save_pending()
            if self.pending_rounds:  # still out: this round waits behind the older ones
                raise _StillPending()
            save_results(self.store, results)
        except (SQLAlchemyError, _StillPending) as error:
            if isinstance(error, SQLAlchemyError) and not is_store_unavailable(error):
                raise
            self._keep(results)
            return results
        self._tell_listeners(results)
        return results

    # --- rounds kept while the store is out ---------------------------------------------------------

    @property
    def pending_rounds(self) -> int:
        """Rounds kept in memory, waiting for the store."""
        return len(self._pending)

    def _keep(self, results: list[CheckResult]) -> None:
        """Keep a round the store did not take. Its database result says the store was unavailable even
        when the probe's SELECT 1 got through (a read-only store): writing the round failed."""
        kept = [
            dataclasses.replace(r, status=UNHEALTHY, error=STORE_UNAVAILABLE_ERROR, response_time_ms=None)
            if r.service == DATABASE_SERVICE and r.status != UNHEALTHY else r
            for r in results
        ]
        with self._pending_lock:
            if len(self._pending) == self._pending.maxlen and not self._dropped_warned:
                self._dropped_warned = True
                log.warning("store still unavailable: keeping only the latest %d health rounds", self._pending.maxlen)
            self._pending.append(kept)

    def save_pending(self) -> int:
        """Write the rounds kept while the store was out, oldest first; how many were written.

        Stops at the first failure (the store is still out: the rest stay). The round listeners
        (the uptime timeline) hear once, after the last one.
        """
        saved: list[CheckResult] | None = None
        count = 0
        with self._pending_lock:
            while self._pending:
                results = self._pending[0]
                try:
                    save_results(self.store, results)
                except SQLAlchemyError as error:
                    if not is_store_unavailable(error):
                        log.exception("a kept health round could not be written; dropped")
                        self._pending.popleft()
                        continue
                    break
                self._pending.popleft()
                saved, count = results, count + 1
            if not self._pending:
                self._dropped_warned = False
        if count:
            log.warning("wrote %d health round%s kept while the store was unavailable", count, "" if count == 1 else "s")
            self._tell_listeners(saved or [])
        return count

    def _tell_listeners(self, results: list[CheckResult]) -> None:
        for listener in self.round_listeners:
            try:
                listener(results)
            except Exception as error:  # what others derive from a round (uptime) must not fail the round itself
                if not self.store.availability.failed(error):
                    log.exception("health round listener failed")

    def _refusal(self, name: str, refused: CircuitOpenError) -> str:
        """What the round records when the breaker refuses the call: half-open (a trial is under way
        elsewhere), or open with the error that opened it."""
        if refused.state == HALF_OPEN:
            return HALF_OPEN_REFUSAL
        try:
            return open_refusal(opening_error(self.store, name))
        except SQLAlchemyError:  # the round itself reports the store; the refusal needs no cause
            return CIRCUIT_OPEN_ERROR

    def _probe_all(self, checks: list[Check]) -> dict[str, Probe]:
        if not checks:
            return {}
        # A fresh pool per round: a probe that overruns its deadline keeps only its own thread.
        pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health-check")
        started = time.perf_counter()
        futures = {check.name: pool.submit(check.probe) for check in checks}
        outcomes: dict[str, Probe] = {}
        try:
            for check in sorted(checks, key=lambda c: c.timeout):
                future = futures[check.name]
                remaining = started + check.timeout + DEADLINE_SLACK - time.perf_counter()
                try:
                    outcomes[check.name] = check.judge(future.result(timeout=max(0.0, remaining)))
                except FutureTimeout:
                    outcomes[check.name] = Probe.failed(f"timed out after {check.timeout:g}s")
                    self._mark_in_flight(check.name, future)
                except Exception as exc:  # a probe bug: report it, never lose the round
                    log.exception("health check %s failed unexpectedly", check.name)
                    outcomes[check.name] = Probe.failed(f"check raised {type(exc).__name__}")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return outcomes

    def _is_in_flight(self, name: str) -> bool:
        with self._lock:
            return name in self._in_flight

    def _mark_in_flight(self, name: str, future: Future[Probe]) -> None:
        # Until the overrunning call returns, the next rounds report it instead of stacking threads.
        with self._lock:
            self._in_flight.add(name)

        def done(_: Future[Probe]) -> None:
            with self._lock:
                self._in_flight.discard(name)

        future.add_done_callback(done)

    def round_due(self) -> bool:
        """No round in the store within the last interval (a fresh start, or a new leader)."""
        last = latest_round_at(self.store)
        return last is None or self.clock.now() - last >= self.settings.health_check_interval

    def run_exclusive_round(self) -> list[CheckResult] | None:
        """Run a round unless one is running anywhere (this or another process or host): the
        scheduled round and an admin refresh must not probe twice or move breakers twice.
        None when another round holds the lock."""
        self._release_left_lock()
        lock = LeaderLease(self.store, f"round:{uuid.uuid4().hex}", self.clock,
                           ttl=MAX_TIMEOUT + ROUND_LOCK_MARGIN, name=ROUND_LOCK)
        try:
            acquired = lock.try_acquire()
        except SQLAlchemyError as error:
            if not is_store_unavailable(error):
                raise
            # No store, no lock: only the process that led when it went runs rounds meanwhile.
            return self.run_round()
        if not acquired:
            return None
        try:
            return self.run_round()
        finally:
            try:
                lock.release()
            except SQLAlchemyError as error:
                if not is_store_unavailable(error):
                    raise
                self._unreleased_lock = lock  # released at the next round: the store's return must not wait for its expiry

    def _release_left_lock(self) -> None:
        lock, self._unreleased_lock = self._unreleased_lock, None
        if lock is None:
            return
        try:
            lock.release()
        except SQLAlchemyError as error:
            if not is_store_unavailable(error):
                raise
            self._unreleased_lock = lock

    def refresh(self) -> HealthSnapshot:
        """Run a round now (admin ``?refresh=true``) unless one is already running, and answer from the store."""
        try:
            self.run_exclusive_round()
        except SQLAlchemyError as error:
            if not self.store.availability.failed(error):
                log.warning("health refresh could not use the store", exc_info=True)
        return self.snapshot()

    # --- answers ---------------------------------------------------------------------------------

    @property
    def stale_after(self) -> float:
        return self._stale_after(self.checks())

    def _stale_after(self, checks: list[Check]) -> float:
        """Results older than this no longer vouch for anything: the job has stopped running."""
        longest = max((c.timeout for c in checks), default=DEFAULT_TIMEOUT)
        return 3 * self.settings.health.health_check_interval + self.settings.scheduler.lease_ttl + longest

    def snapshot(self, now: float | None = None) -> HealthSnapshot:
        """Every dependency's latest stored result (cheap: two small reads in one transaction), as at ``now``."""
        checks = self.checks()
        expected = [ExpectedService(c.name, c.critical, c.component_type, c.uses_breaker) for c in checks]
        now = self.clock.now() if now is None else now
        try:
            with self.store.read() as conn:
                snapshot = read_snapshot(conn, expected, self.breakers.states_in(conn, now), now,
                                         self._stale_after(checks))
        except SQLAlchemyError as error:
            if not self.store.availability.failed(error):
                log.warning("health snapshot: the store did not answer", exc_info=True)
            snapshot = _store_unavailable_snapshot(expected, now)
        return self._with_live_dependencies(snapshot, now)

    def _with_live_dependencies(self, snapshot: HealthSnapshot, now: float) -> HealthSnapshot:
        """The snapshot plus what this process sees failing itself: the store (a read may work while
        writes fail), the rate-limit storage."""
        extra: dict[str, ServiceHealth] = {}
        if self.store.availability.down:
            extra[STORE_SERVICE] = ServiceHealth(STORE_SERVICE, UNHEALTHY, True, DATASTORE, None, now,
                                                 STORE_UNAVAILABLE_ERROR, None)
        for observe in self.live_dependencies:
            try:
                entry = observe(now)
            except Exception:  # an observer bug must not break the health answer
                log.exception("live dependency observer failed")
                continue
            if entry is not None:
                extra[entry.name] = entry
        if not extra:
            return snapshot
        return HealthSnapshot({**snapshot.services, **{k: v for k, v in extra.items()
                                                       if k not in snapshot.services}}, snapshot.taken_at)

    def readiness(self) -> Readiness:
        """Ready unless one of READINESS_DEPENDENCIES is down ("store": our own store answers a
        real query and takes writes; "ratelimit": its storage answers). Other dependencies, payment
        providers included, lower the health score and alert, but must not pull every instance out
        of the load balancer's rotation."""
        checks = self.checks()
        required = set(self.settings.readiness_dependencies)
        if STORE_SERVICE in required:
            try:
                self.store.ping()
            except Exception as error:  # any driver error means the store did not answer
                if not self.store.availability.failed(error):
                    log.warning("readiness: the store did not answer: %s", type(error).__name__)
                return Readiness(False, [STORE_UNAVAILABLE_ERROR])
            if self.store.availability.down:  # it reads, but writes still fail
                return Readiness(False, [STORE_UNAVAILABLE_ERROR])
        snapshot = self.snapshot()
        reasons = [
            f"dependency {s.name} is {s.status}" + (f" ({s.error})" if s.error else "")
            for s in snapshot.services.values()
            # a live dependency (ratelimit) is listed only while it fails: listed and required is not ready
            if s.name in required and s.name != STORE_SERVICE
            and (s.status == UNHEALTHY or s.name not in {c.name for c in checks})
        ]
        return Readiness(not reasons, reasons)

    def events(self, since: float | None = None, until: float | None = None, service: str | None = None) -> list[HealthEvent]:
        return list_events(self.store, since, until, service=service)

    def report(self, window: TimeWindow) -> CategoryReport:
        """The "health" category of the metrics export, as at the window's end (the answer's one moment)."""
        return build_category_report(self.snapshot(min(window.end, self.clock.now())),
                                     window_stats(self.store, window.start, window.end), window)


def _as_check(custom: CustomCheck) -> Check:
    return Check(
        name=custom.name,
        probe=custom_probe(custom.fn),
        critical=custom.critical,
        timeout=custom.timeout,
        latency_threshold_ms=custom.latency_threshold_ms,
        kind="custom",
    )


def _store_unavailable_snapshot(expected: list[ExpectedService], now: float) -> HealthSnapshot:
    """What we can honestly say without the store: the database is down, the rest unknown."""
    services = {}
    for spec in expected:
        if spec.name == "database":
            services[spec.name] = ServiceHealth(
                spec.name, UNHEALTHY, spec.critical, spec.component_type, None, now, STORE_UNAVAILABLE_ERROR, None
            )
        else:
            services[spec.name] = ServiceHealth(
                spec.name, UNKNOWN, spec.critical, spec.component_type, None, None, "not readable: store unavailable", None
            )
    return HealthSnapshot(services, now)
