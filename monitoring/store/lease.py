"""The leader lease: one row in the store that says which process runs the global jobs.

Whoever holds an unexpired lease renews it; anyone may take it once it has expired. The
take-or-renew is one conditional UPDATE, so two processes (or hosts) can never both win.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, or_, select, update

from monitoring.clock import Clock
from monitoring.store.database import Store
from monitoring.store.schema import leases


@dataclass(frozen=True)
class LeaseHolder:
    name: str
    holder: str
    acquired_at: float
    expires_at: float
    generation: int


class LeaderLease:
    """Acquire, renew and release one named lease for one holder."""

    def __init__(self, store: Store, holder: str, clock: Clock, ttl: float, name: str = "leader") -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.ttl = ttl
        self.name = name
        self._held_until = 0.0

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired, renew it if ours; True when we hold it now."""
        now = self.clock.now()
        expires = now + self.ttl
        with self.store.write() as conn:
            conn.execute(
                self.store.insert(leases)
                .values(name=self.name, holder=self.holder, acquired_at=now, expires_at=expires, generation=1)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            ours = leases.c.holder == self.holder
            result = conn.execute(
                update(leases)
                .where(leases.c.name == self.name, or_(ours, leases.c.expires_at < now))
                .values(
                    holder=self.holder,
                    expires_at=expires,
                    acquired_at=case((ours, leases.c.acquired_at), else_=now),
                    generation=case((ours, leases.c.generation), else_=leases.c.generation + 1),
                )
            )
            held = result.rowcount == 1
        # Stop acting as leader a little before the lease runs out, so that a slow renewal
        # never lets two processes run global jobs at the same moment.
        self._held_until = expires - self.ttl * 0.2 if held else 0.0
        return held

    def held(self) -> bool:
        """Whether this process may run global jobs right now (no I/O)."""
        return self.clock.now() < self._held_until

    def release(self) -> None:
        """Give the lease up at a clean shutdown so another process takes over at once."""
        self._held_until = 0.0
        with self.store.write() as conn:
            conn.execute(
                update(leases)
                .where(leases.c.name == self.name, leases.c.holder == self.holder)
                .values(expires_at=0.0)
            )

    def current(self) -> LeaseHolder | None:
        """Who holds the lease according to the store."""
        with self.store.read() as conn:
            row = conn.execute(select(leases).where(leases.c.name == self.name)).mappings().first()
        return LeaseHolder(**row) if row else None
