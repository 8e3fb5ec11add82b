"""Availability zones: every process heartbeats into ``instances`` with its ZONE (every LEASE_TTL/3 s).

An instance is up when its last heartbeat is at most ``alive_within`` seconds old (LEASE_TTL:
three missed heartbeats); a zone is up when at least one of its instances is. An instance that
stopped cleanly (its scheduler's shutdown marks it ``stopped_at``) is no longer listed at once:
a restart or a scale-down is no outage. One that vanished without stopping (killed, its host
lost) is down once its heartbeat times out, and listed as down for ``forget_after`` (a day), so
a zone whose only instances were lost shows as down, not as absent.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from monitoring.clock import isoformat
from monitoring.durations import DAY
from monitoring.store.database import Store
from monitoring.store.schema import instances

FORGET_AFTER = DAY


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    zone: str
    started_at: float
    last_seen: float
    up: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.instance_id,
            "status": "up" if self.up else "down",
            "startedAt": isoformat(self.started_at),
            "lastSeen": isoformat(self.last_seen),
        }


@dataclass(frozen=True)
class ZoneStatus:
    name: str
    instances: tuple[InstanceStatus, ...]

    @property
    def up(self) -> bool:
        return any(i.up for i in self.instances)

    @property
    def last_seen(self) -> float:
        return max(i.last_seen for i in self.instances)

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.name,
            "status": "up" if self.up else "down",
            "instancesUp": sum(1 for i in self.instances if i.up),
            "lastSeen": isoformat(self.last_seen),
            "instances": [i.to_json() for i in self.instances],
        }


def zone_statuses(store: Store, now: float, alive_within: float, forget_after: float = FORGET_AFTER) -> list[ZoneStatus]:
    """Every zone with an instance seen within ``forget_after`` and not stopped, by name; its instances newest
    started first (an order heartbeats do not change)."""
    t = instances.c
    query = select(t.instance_id, t.zone, t.started_at, t.last_seen).where(
        t.last_seen >= now - forget_after, t.stopped_at.is_(None))
    by_zone: dict[str, list[InstanceStatus]] = defaultdict(list)
    with store.read() as conn:
        for row in conn.execute(query):
            up = row.last_seen >= now - alive_within
            by_zone[row.zone].append(InstanceStatus(row.instance_id, row.zone, row.started_at, row.last_seen, up))
    return [
        ZoneStatus(zone, tuple(sorted(found, key=lambda i: (-i.started_at, i.instance_id))))
        for zone, found in sorted(by_zone.items())
    ]
