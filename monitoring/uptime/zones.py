"""Availability zones: every process heartbeats into ``instances`` with its ZONE (every LEASE_TTL/3 s).

An instance is up when its last heartbeat is at most ``alive_within`` seconds old (LEASE_TTL:
three missed heartbeats); a zone is up when at least one of its instances is. Instances
silent for longer than ``forget_after`` (a day) are no longer listed, so a zone whose hosts
were all retired drops off the list a day later.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from monitoring.clock import isoformat
from monitoring.store.database import Store
from monitoring.store.schema import instances

FORGET_AFTER = 86400.0


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
    """Every zone with an instance seen within ``forget_after``, by name; its instances newest first."""
    t = instances.c
    query = select(t.instance_id, t.zone, t.started_at, t.last_seen).where(t.last_seen >= now - forget_after)
    by_zone: dict[str, list[InstanceStatus]] = defaultdict(list)
    with store.read() as conn:
        for row in conn.execute(query):
            up = row.last_seen >= now - alive_within
            by_zone[row.zone].append(InstanceStatus(row.instance_id, row.zone, row.started_at, row.last_seen, up))
    return [
        ZoneStatus(zone, tuple(sorted(found, key=lambda i: (-i.last_seen, i.instance_id))))
        for zone, found in sorted(by_zone.items())
    ]
