"""HealthService: runs the checks (in parallel, each with its own deadline), stores what they find,
and answers from the store. One per app; the health blueprint's install() builds it."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy.exc import SQLAlchemyError

from monitoring.settings import Settings
from monitoring.clock import Clock
from monitoring.health.circuit import (
    HALF_OPEN,
    HALF_OPEN_REFUSAL,
    BreakerPolicy,
    CircuitBreakers,
    CircuitOpenError,
    Permit,
    open_refusal,
)
from monitoring.health.checks import Check, Probe, configured_checks, custom_probe
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
from monitoring.store.database import Store
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


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]


class HealthService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
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
        for result in results:
            permit = permits.get(result.service)
            if permit is None:
                continue
            if result.status == UNHEALTHY:
                self.breakers.record_failure(permit, result.error)
            else:  # healthy or degraded: the dependency answered
                self.breakers.record_success(permit)
        save_results(self.store, results)
        for listener in self.round_listeners:
            try:
                listener(results)
            except Exception:  # what others derive from a round (uptime) must not fail the round itself
                log.exception("health round listener failed")
        return results

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
        lock = LeaderLease(self.store, f"round:{uuid.uuid4().hex}", self.clock,
                           ttl=MAX_TIMEOUT + ROUND_LOCK_MARGIN, name=ROUND_LOCK)
        if not lock.try_acquire():
            return None
        try:
            return self.run_round()
        finally:
            lock.release()

    def refresh(self) -> HealthSnapshot:
        """Run a round now (admin ``?refresh=true``) unless one is already running, and answer from the store."""
        try:
            self.run_exclusive_round()
        except SQLAlchemyError:
            log.warning("health refresh could not use the store", exc_info=True)
        return self.snapshot()

    # --- answers ---------------------------------------------------------------------------------

    @property
    def stale_after(self) -> float:
        return self._stale_after(self.checks())

    def _stale_after(self, checks: list[Check]) -> float:
        """Results older than this no longer vouch for anything: the job has stopped running."""
        longest = max((c.timeout for c in checks), default=DEFAULT_TIMEOUT)
        return 3 * self.settings.health_check_interval + self.settings.lease_ttl + longest

    def snapshot(self, now: float | None = None) -> HealthSnapshot:
        """Every dependency's latest stored result (cheap: two small reads in one transaction), as at ``now``."""
        checks = self.checks()
        expected = [ExpectedService(c.name, c.critical, c.component_type, c.uses_breaker) for c in checks]
        now = self.clock.now() if now is None else now
        try:
            with self.store.read() as conn:
                return read_snapshot(conn, expected, self.breakers.states_in(conn, now), now, self._stale_after(checks))
        except SQLAlchemyError:
            log.warning("health snapshot: the store did not answer", exc_info=True)
            return _store_unavailable_snapshot(expected, now)

    def readiness(self) -> Readiness:
        """Ready unless one of READINESS_DEPENDENCIES is down ("store": our own store answers a
        real query). Other dependencies, payment providers included, lower the health score and
        alert, but must not pull every instance out of the load balancer's rotation."""
        required = set(self.settings.readiness_dependencies)
        if "store" in required:
            try:
                self.store.ping()
            except Exception:  # any driver error means the store did not answer
                log.warning("readiness: the store did not answer", exc_info=True)
                return Readiness(False, [STORE_UNAVAILABLE_ERROR])
        snapshot = self.snapshot()
        reasons = [
            f"dependency {s.name} is unhealthy" + (f" ({s.error})" if s.error else "")
            for s in snapshot.services.values()
            if s.name in required and s.status == UNHEALTHY
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
