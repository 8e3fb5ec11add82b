"""Circuit breakers kept in the store, so every worker and host sees (and moves) the same breaker.

(Not named breaker.py: a submodule of that name would shadow ``monitoring.health.breaker()``.)

Why not pybreaker: its state lives in the process (or Redis, through its storage hook) and
reads the wall clock. We need the state in the SQL store that already is the source of
truth, shared across workers and hosts, with the clock injected for tests, and with exactly
one trial call at a time across processes, which pybreaker's storage interface (get/set
of a state and a counter) cannot express atomically. The state machine is small enough to
own:

* ``closed``: calls go through; ``failure_threshold`` consecutive failures open it.
* ``open``: no call goes through until ``reset_timeout`` seconds after it opened.
* ``half_open``: one caller at a time holds the trial, claimed with one conditional
  UPDATE (the leader-lease technique), so two processes can never both win it. A failed
  trial reopens the breaker; ``success_threshold`` consecutive successful trials close it.
  A trial whose caller vanished is given up after ``trial_timeout`` seconds.

Every state change is written as a health event in the same transaction as the change.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from monitoring.clock import Clock
from monitoring.health.events import BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPENED, record_event
from monitoring.store.database import Store
from monitoring.store.health_tables import circuit_breakers

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# A trial call whose caller died (worker killed mid-call) must not keep the breaker half-open forever.
MIN_TRIAL_TIMEOUT = 60.0

# What a health round records for a dependency its breaker did not let it call. The text keeps the
# error that opened the breaker, so the cause stays in sight for as long as the breaker is open.
REFUSED_PREFIXES = ("circuit open", "circuit half-open")
HALF_OPEN_REFUSAL = "circuit half-open: another caller holds the trial call; not called"


def open_refusal(opened_by: str | None) -> str:
    """``circuit open after HTTP 500: not called``: a round's result while the breaker is open."""
    return f"circuit open after {opened_by}: not called" if opened_by else "circuit open: not called"


def refused_by_breaker(error: str) -> bool:
    """The result is the breaker's refusal, not an answer of the dependency."""
    return error.startswith(REFUSED_PREFIXES)


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 2

    @property
    def trial_timeout(self) -> float:
        return max(self.reset_timeout, MIN_TRIAL_TIMEOUT)


@dataclass(frozen=True)
class BreakerState:
    """One breaker as the store has it."""

    service: str
    state: str
    failures: int
    successes: int
    opened_at: float | None
    next_trial_at: float | None
    trial_in_progress: bool

    def next_trial_in(self, now: float) -> float | None:
        """Seconds until a trial call may go through (0 when one may now); None when closed or trialling."""
        if self.state == OPEN and self.next_trial_at is not None:
            return max(0.0, self.next_trial_at - now)
        if self.state == HALF_OPEN and not self.trial_in_progress:
            return 0.0
        return None


@dataclass(frozen=True)
class Permit:
    """Leave to make one call. ``trial_token`` is set when the call is the half-open trial."""

    service: str
    trial_token: str | None = None
    failures_seen: int = 0  # consecutive failures when permitted: a success then needs to reset them

    @property
    def is_trial(self) -> bool:
        return self.trial_token is not None


class CircuitOpenError(RuntimeError):
    """The breaker does not let this call through: it is open, or another caller holds the trial."""

    def __init__(self, service: str, state: str, retry_after: float | None) -> None:
        self.service = service
        self.state = state
        self.retry_after = retry_after
        if state == OPEN and retry_after is not None:
            reason = f"next trial in {retry_after:.1f}s"
        else:
            reason = "a trial call is in progress"
        super().__init__(f"circuit breaker for {service!r} is {state.replace('_', '-')}: {reason}")


class CircuitBreakers:
    """All breakers in one store; any number of instances (processes, hosts) may share it."""

    def __init__(self, store: Store, clock: Clock, policy: BreakerPolicy) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self._known: set[str] = set()

    # --- reading -------------------------------------------------------------------------

    def state(self, service: str) -> BreakerState:
        self._ensure(service)
        with self.store.read() as conn:
            row = conn.execute(select(circuit_breakers).where(circuit_breakers.c.service == service)).mappings().one()
        return self._state(row)

    def states(self) -> dict[str, BreakerState]:
        with self.store.read() as conn:
            return self.states_in(conn)

    def states_in(self, conn: Any, now: float | None = None) -> dict[str, BreakerState]:
        """Every breaker, read in the caller's transaction (as at ``now``)."""
        now = self.clock.now() if now is None else now
        return {row["service"]: self._state(row, now) for row in conn.execute(select(circuit_breakers)).mappings()}

    def _state(self, row: Any, now: float | None = None) -> BreakerState:
        now = self.clock.now() if now is None else now
        return BreakerState(
            service=row["service"],
            state=row["state"],
            failures=row["failures"],
            successes=row["successes"],
            opened_at=row["opened_at"],
            next_trial_at=row["next_trial_at"],
            trial_in_progress=row["trial_holder"] is not None and (row["trial_expires_at"] or 0) > now,
        )

    # --- calls ---------------------------------------------------------------------------

    def acquire(self, service: str) -> Permit:
        """Leave for one call, or CircuitOpenError. In half-open, at most one caller holds the trial."""
        current = self.state(service)
        now = self.clock.now()
        if current.state == CLOSED:
            return Permit(service, failures_seen=current.failures)
        if current.state == OPEN and current.next_trial_at is not None and now < current.next_trial_at:
            raise CircuitOpenError(service, OPEN, current.next_trial_at - now)
        if current.state == HALF_OPEN and current.trial_in_progress:
            raise CircuitOpenError(service, HALF_OPEN, None)
        permit = self._claim_trial(service, now)
        if permit is not None:
            return permit
        # Another caller won the claim (or closed the breaker) between our read and our update.
        current = self.state(service)
        if current.state == CLOSED:
            return Permit(service, failures_seen=current.failures)
        raise CircuitOpenError(service, current.state, current.next_trial_in(now))

    def _claim_trial(self, service: str, now: float) -> Permit | None:
        token = uuid.uuid4().hex
        claim = {"trial_holder": token, "trial_expires_at": now + self.policy.trial_timeout, "updated_at": now}
        table = circuit_breakers.c
        with self.store.write() as conn:
            if _changed(conn, service, [table.state == OPEN, table.next_trial_at <= now],
                        state=HALF_OPEN, successes=0, **claim):
                record_event(conn, service, BREAKER_HALF_OPEN, OPEN, HALF_OPEN, now)
                return Permit(service, trial_token=token)
            free = or_(table.trial_holder.is_(None), table.trial_expires_at <= now)
            if _changed(conn, service, [table.state == HALF_OPEN, free], **claim):
                return Permit(service, trial_token=token)
        return None

    def record_success(self, permit: Permit) -> str | None:
        """The call succeeded. Returns the new state when this success changed it."""
        now = self.clock.now()
        table = circuit_breakers.c
        if not permit.is_trial:
            if permit.failures_seen:  # most successes change nothing: no write on the happy path
                with self.store.write() as conn:
                    _changed(conn, permit.service, [table.state == CLOSED], failures=0, updated_at=now)
            return None
        with self.store.write() as conn:
            if not _changed(conn, permit.service, _holds_trial(permit), successes=table.successes + 1,
                            trial_holder=None, trial_expires_at=None, updated_at=now):
                return None  # our claim expired and someone else decided meanwhile
            enough = [table.state == HALF_OPEN, table.successes >= self.policy.success_threshold]
            if _changed(conn, permit.service, enough, state=CLOSED, failures=0, successes=0, opened_at=None,
                        next_trial_at=None, updated_at=now):
                detail = {"successes": self.policy.success_threshold}
                record_event(conn, permit.service, BREAKER_CLOSED, HALF_OPEN, CLOSED, now, detail)
                return CLOSED
        return None

    def record_failure(self, permit: Permit, error: str = "") -> str | None:
        """The call failed. Returns the new state when this failure changed it (``open``)."""
        now = self.clock.now()
        table = circuit_breakers.c
        reopen = {
            "state": OPEN,
            "opened_at": now,
            "next_trial_at": now + self.policy.reset_timeout,
            "successes": 0,
            "trial_holder": None,
            "trial_expires_at": None,
            "updated_at": now,
        }
        with self.store.write() as conn:
            if permit.is_trial:
                if _changed(conn, permit.service, _holds_trial(permit), **reopen):
                    record_event(conn, permit.service, BREAKER_OPENED, HALF_OPEN, OPEN, now, {"error": error})
                    return OPEN
                return None
            if not _changed(conn, permit.service, [table.state == CLOSED], failures=table.failures + 1,
                            updated_at=now):
                return None  # opened by another caller meanwhile: this failure adds nothing
            too_many = [table.state == CLOSED, table.failures >= self.policy.failure_threshold]
            if _changed(conn, permit.service, too_many, **reopen):
                detail = {"failures": self.policy.failure_threshold, "error": error}
                record_event(conn, permit.service, BREAKER_OPENED, CLOSED, OPEN, now, detail)
                return OPEN
        return None

    def release(self, permit: Permit) -> None:
        """Give a trial back without a verdict (the call was interrupted, not failed)."""
        if not permit.is_trial:
            return
        with self.store.write() as conn:
            _changed(conn, permit.service, _holds_trial(permit), trial_holder=None, trial_expires_at=None,
                     updated_at=self.clock.now())

    @contextmanager
    def guard(self, service: str, ignore: tuple[type[BaseException], ...] = ()) -> Iterator[Permit]:
        """``with breakers.guard("stripe"): call()``: CircuitOpenError while open; the block's outcome counts.

        An exception of a type in ``ignore`` (say, a declined card) propagates but counts as a
        success: the dependency answered. Any other Exception counts as a failure.
        """
        permit = self.acquire(service)
        try:
            yield permit
        except ignore:
            self.record_success(permit)
            raise
        except Exception as exc:
            self.record_failure(permit, type(exc).__name__)
            raise
        except BaseException:  # KeyboardInterrupt, a generator closed: no verdict on the dependency
            self.release(permit)
            raise
        self.record_success(permit)

    # --- rows ----------------------------------------------------------------------------

    def _ensure(self, service: str) -> None:
        if service in self._known:
            return
        with self.store.write() as conn:
            conn.execute(
                self.store.insert(circuit_breakers)
                .values(service=service, state=CLOSED, failures=0, successes=0, updated_at=self.clock.now())
                .on_conflict_do_nothing(index_elements=["service"])
            )
        self._known.add(service)


def _holds_trial(permit: Permit) -> list[Any]:
    return [circuit_breakers.c.state == HALF_OPEN, circuit_breakers.c.trial_holder == permit.trial_token]


def _changed(conn: Any, service: str, conditions: list[Any], **values: Any) -> bool:
    """One conditional UPDATE of a breaker; True when the conditions still held and it changed."""
    result = conn.execute(
        update(circuit_breakers).where(circuit_breakers.c.service == service, *conditions).values(**values)
    )
    return bool(result.rowcount == 1)
