"""Bounds on what ingested telemetry may add: distinct services, and routes per service.

Any app can send any ``service.name`` and any ``http.route``; a bug that puts raw paths in
``http.route`` would otherwise create a series per URL. Defaults: at most 20 services and
250 routes per service (5,000 series, half the recorder's 10,000 pending keys). Past the
bound, a new service is counted as ``<other>`` and a new route of a known service as
``<other>``; ``<unmatched>`` and ``<other>`` are never counted against the bound.

CardinalityGuard is per process and first come, first served: each process admits the
first names it sees. Under several workers they may, at the bound, admit different names;
phase 2 can seed a guard with the names the store already holds (``admit`` them at start)
so that all processes prefer those.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import TypeVar

from monitoring.ingest.records import IngestedError, IngestedRequest, RequestContribution
from monitoring.ingest.routes import OTHER_ROUTE, UNMATCHED_ROUTE

OTHER_SERVICE = "<other>"
_RESERVED_ROUTES = frozenset({UNMATCHED_ROUTE, OTHER_ROUTE})

RecordT = TypeVar("RecordT", IngestedRequest, RequestContribution)


@dataclass(frozen=True)
class CardinalityBounds:
    """At most ``max_services`` distinct services and ``max_routes_per_service`` routes each."""

    max_services: int = 20
    max_routes_per_service: int = 250

    def __post_init__(self) -> None:
        if self.max_services < 1 or self.max_routes_per_service < 1:
            raise ValueError("cardinality bounds must be at least 1")


DEFAULT_CARDINALITY = CardinalityBounds()


class CardinalityGuard:
    """Applies CardinalityBounds: names seen first are kept, later ones fold into ``<other>``."""

    def __init__(self, bounds: CardinalityBounds = DEFAULT_CARDINALITY) -> None:
        self.bounds = bounds
        self._routes: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self.folded = 0  # records whose service or route was folded into <other>

    def admit(self, service: str, route: str) -> tuple[str, str]:
        """The (service, route) to record under."""
        with self._lock:
            routes = self._routes.get(service)
            folded = False
            if routes is None:
                if len(self._routes) >= self.bounds.max_services and service != OTHER_SERVICE:
                    service, folded = OTHER_SERVICE, True
                    routes = self._routes.get(service)
                if routes is None:
                    # <other> itself may exceed max_services by one: the overflow needs a home.
                    routes = self._routes[service] = set()
            if route not in routes and route not in _RESERVED_ROUTES:
                if len(routes) >= self.bounds.max_routes_per_service:
                    route, folded = OTHER_ROUTE, True
                else:
                    routes.add(route)
            if folded:
                self.folded += 1
            return service, route

    def admit_record(self, record: RecordT) -> RecordT:
        """``record`` with its service and route bounded (the same object when nothing changed)."""
        service, route = self.admit(record.service, record.route)
        if service == record.service and route == record.route:
            return record
        return replace(record, service=service, route=route)

    def admit_error(self, error: IngestedError) -> IngestedError:
        """``error`` with its service bounded (its route label is display text, its fingerprint unchanged)."""
        service, _ = self.admit(error.service, UNMATCHED_ROUTE)
        return error if service == error.service else replace(error, service=service)

    @property
    def services(self) -> int:
        with self._lock:
            return len(self._routes)
