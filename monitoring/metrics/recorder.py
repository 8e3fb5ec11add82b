"""The request path's only cost: one sample into this process's per-minute aggregate.

``RequestRecorder.record`` is called once per HTTP request (by the Flask hooks in
monitoring/api/middleware.py, or by any other server through this Flask-free API). It
takes a lock for one dict update and one histogram update and does no I/O; the flush job
swaps the aggregate out under the same lock and writes it to the store off the request path.

Samples are keyed by the minute they were taken in, the service (the embedded app's
SERVICE_NAME, or an ingested app's ``service.name``) and the route (method, template,
internal flag), so a flush that straddles a minute boundary still puts every request in its
own minute row. Each key has one latency histogram and a count per status class. Memory is
bounded by the keys of the minutes not yet flushed: routes are URL rule templates (a
bounded set), methods are the standard ones or ``OTHER``, services are one per embedded app
or capped by the ingest side's CardinalityGuard, and past ``max_keys`` new keys fold into
one ``<overflow>`` route of their service.

Two ways in, both memory only:

* ``record(method, route, status, seconds, internal=False, service=DEFAULT_SERVICE)``: one
  finished request (the embedded middleware, an OTLP server span).
* ``record_histogram(service, method, route, status, histogram, at)``: many requests at once,
  a whole latency histogram in the store's layout (an OTLP ``http.server.request.duration``
  data point, converted by ingest into a RequestContribution) merged into the minute of ``at``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import NamedTuple

from monitoring.clock import Clock, SystemClock
from monitoring.metrics.histogram import LatencyHistogram
from monitoring.store.metrics_tables import DEFAULT_SERVICE as DEFAULT_SERVICE  # re-exported for the adapters
from monitoring.store.metrics_tables import SERVICE_LENGTH

UNMATCHED_ROUTE = "<unmatched>"
OVERFLOW_ROUTE = "<overflow>"
OTHER_METHOD = "OTHER"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
MAX_ROUTE_LENGTH = 255
MINUTE = 60.0
# Far above any real app's route count times a few pending minutes; only a bug (a raw path
# passed as the route) gets near it, and then the store stays bounded anyway.
DEFAULT_MAX_KEYS = 10_000


STATUS_CLASSES = 6  # index 0: a status outside 100..599; 1..5: 1xx..5xx


class RollupKey(NamedTuple):
    """What a rollup row is per: the minute, and the request's method, route, internal flag and service.

    ``service`` comes last, with a default, so that keys built before the dimension
    (``RollupKey(minute, method, route, internal)``) still mean the default service.
    """

    minute: float  # epoch seconds, a multiple of 60
    method: str
    route: str
    internal: bool  # a monitoring endpoint: left out of SLO and alert figures
    service: str = DEFAULT_SERVICE


def status_class(status: int) -> int:
    """2 for 2xx ... 5 for 5xx; 0 for anything outside 100..599."""
    cls = status // 100
    return cls if 1 <= cls <= 5 else 0


class RequestAggregate:
    """Requests of one route in one interval: their latencies and how many got each status class."""

    __slots__ = ("histogram", "status")

    def __init__(self) -> None:
        self.histogram = LatencyHistogram()
        self.status = [0] * STATUS_CLASSES

    def record(self, status_class: int, seconds: float) -> None:
        self.histogram.record(seconds)
        self.status[status_class] += 1

    @property
    def count(self) -> int:
        return self.histogram.count

    @property
    def errors(self) -> int:
        """5xx responses."""
        return self.status[5]

    def merge(self, other: RequestAggregate) -> None:
        self.histogram.merge(other.histogram)
        for index, count in enumerate(other.status):
            self.status[index] += count

    def copy(self) -> RequestAggregate:
        twin = RequestAggregate()
        twin.histogram = self.histogram.copy()
        twin.status = list(self.status)
        return twin


_PendingKey = tuple[float, str, str, bool, str]  # minute, method, route, internal, service


class RequestRecorder:
    """Per-process, per-minute aggregate of request durations, swapped out by ``drain``."""

    def __init__(self, clock: Clock, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        # The request path calls this once per request: the wall clock's own time.time, not
        # through the SystemClock method that returns it.
        self._now = time.time if type(clock) is SystemClock else clock.now
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._pending: dict[_PendingKey, RequestAggregate] = {}

    def record(self, method: str, route: str, status: int, seconds: float, internal: bool = False,
               service: str = DEFAULT_SERVICE) -> None:
        """One finished request: ``route`` is the URL rule template (or UNMATCHED_ROUTE), never the raw path.

        ``service`` names the app that served it (at most SERVICE_LENGTH characters, cut beyond);
        callers that name none record under DEFAULT_SERVICE.
        """
        now = self._now()
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        cls = status // 100
        if not 1 <= cls <= 5:
            cls = 0
        key = (now - now % MINUTE, method, route, internal, service)
        with self._lock:
            aggregate = self._pending.get(key)
            if aggregate is None:
                aggregate = self._add_key(key)
            aggregate.histogram.record(seconds)
            aggregate.status[cls] += 1

    def record_histogram(self, service: str, method: str, route: str, status: int,
                         histogram: LatencyHistogram, at: float, internal: bool = False) -> None:
        """Many requests of one (service, method, route, status) at once: merge ``histogram`` into the minute of ``at``.

        ``histogram`` is in the store's layout (LatencyHistogram: ingest converts OTLP buckets
        into it, see monitoring.ingest.histogram_conversion); all ``histogram.count`` requests
        count under ``status``'s class. ``at`` (epoch seconds) picks the minute row, e.g. the
        end of the data point's interval. The histogram is copied, never kept. An empty one
        changes nothing.
        """
        if not isinstance(histogram, LatencyHistogram):
            raise TypeError(f"record_histogram takes a LatencyHistogram, not {type(histogram).__name__}")
        if not histogram.count:
            return
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        key = (at - at % MINUTE, method, route, internal, service)
        with self._lock:
            aggregate = self._pending.get(key)
            if aggregate is None:
                aggregate = self._add_key(key)
            aggregate.histogram.merge(histogram)
            aggregate.status[status_class(status)] += histogram.count

    def _add_key(self, key: _PendingKey) -> RequestAggregate:
        """A new key (caller holds the lock): long names are cut, and past max_keys routes fold together."""
        minute, method, route, internal, service = key
        if len(route) > MAX_ROUTE_LENGTH:
            route = route[:MAX_ROUTE_LENGTH]
        if len(service) > SERVICE_LENGTH:
            service = service[:SERVICE_LENGTH]
        if len(self._pending) >= self._max_keys:
            route = OVERFLOW_ROUTE
        folded = (minute, method, route, internal, service)
        aggregate = self._pending.get(folded)
        if aggregate is None:
            aggregate = self._pending[folded] = RequestAggregate()
        # No alias is kept for a folded key: that would let the bound grow with bad input. Such
        # keys take this slow path on every request, which only a misbehaving caller pays.
        return aggregate

    def drain(self) -> dict[RollupKey, RequestAggregate]:
        """Take everything recorded so far (for the flush) and start afresh."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return {RollupKey(*key): aggregate for key, aggregate in pending.items()}

    def restore(self, entries: Mapping[RollupKey, RequestAggregate]) -> None:
        """Put back what a failed flush took, merged with whatever arrived meanwhile (retried next flush)."""
        with self._lock:
            for key, aggregate in entries.items():
                plain = (key.minute, key.method, key.route, key.internal, key.service)
                current = self._pending.get(plain)
                if current is None:
                    self._pending[plain] = aggregate
                else:
                    current.merge(aggregate)

    @property
    def pending_keys(self) -> int:
        """Keys waiting for the next flush."""
        return len(self._pending)
