"""Where decoded telemetry goes: the request rollups and error groups the embedded app feeds.

``IngestSink`` takes the batches the decoders return (TraceBatch, MetricBatch, SentryBatch)
and records what they hold into the same parts the embedded Flask middleware uses, so every
figure, export, rule and dashboard sees ingested requests and errors as it sees the embedded
app's:

* IngestedRequest (an OTLP server span, a Sentry http.server transaction): one sample into a
  RequestAggregate keyed like the recorder's (the minute the request ended, method, route,
  not internal, its service), merged into the process's RequestRecorder in one step per
  batch (one lock, not one per span); the recorder's flush job writes it to the store with
  everything else.
* RequestContribution (an OTLP duration histogram point): its whole histogram merged by the
  recorder's ``record_histogram`` into the minute of the interval's middle, its count in its
  status class. A service whose
  spans (or transactions) this process saw within ``spans_win_seconds`` sends its requests
  twice, once as spans and once as metrics: its contributions are dropped, spans win (they
  are exact; an SDK's default explicit buckets cannot give a p95 within 1 %). Per process:
  under several workers a service's first metrics export may reach a worker that has not
  seen its spans yet (the README says so; send one of the two, or delta metrics only for
  services without traces).
* IngestedError: into the ErrorTracker's pending groups with ``record_error``, under its own
  fingerprint (the decoders' key already hashes the service) and service, flushed by the
  tracker's job.

Every record passes the app's one CardinalityGuard first (services and routes per service
bounded, the rest folded into ``<other>``). Methods outside the recorder's set become its
``OTHER``. Nothing here does I/O: the endpoints call it on the request thread.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitoring.clock import Clock
from monitoring.errors.tracking import ErrorTracker
from monitoring.ingest.cardinality import CardinalityGuard
from monitoring.ingest.records import IngestedError, IngestedRequest, RequestContribution
from monitoring.metrics.recorder import (
    MAX_ROUTE_LENGTH,
    MINUTE,
    OTHER_METHOD,
    STANDARD_METHODS,
    RequestAggregate,
    RequestRecorder,
    RollupKey,
    status_class,
)

if TYPE_CHECKING:  # the decoders (and OTLP's protobuf stack) load on a worker's first ingest request
    from monitoring.ingest.otlp_metrics import MetricBatch
    from monitoring.ingest.otlp_traces import TraceBatch
    from monitoring.ingest.sentry_protocol import SentryBatch

# How long after a service's last span its metrics are still taken for duplicates. Longer
# than any exporter's interval (the OTLP default is 60 s), short enough that a service whose
# tracing was switched off is counted from its metrics again within minutes.
SPANS_WIN_SECONDS = 600.0
MAX_CONCURRENT_DECODES = 4


class ShedGate:
    """At most ``limit`` ingest requests decoded at once in this process; past them the endpoint
    answers 503 with Retry-After (OTLP and Sentry SDKs retry later) rather than pile up threads
    decoding 64 MiB bodies. Sync workers handle one request at a time and never reach it."""

    def __init__(self, limit: int = MAX_CONCURRENT_DECODES) -> None:
        self._slots = threading.BoundedSemaphore(limit)

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()


@dataclass(frozen=True)
class SinkResult:
    """What one batch added: requests and errors recorded, contributions dropped because spans win."""

    requests: int = 0
    errors: int = 0
    superseded_contributions: int = 0
    dropped_errors: int = 0  # the error tracker's pending groups were full

    def __add__(self, other: SinkResult) -> SinkResult:
        return SinkResult(self.requests + other.requests, self.errors + other.errors,
                          self.superseded_contributions + other.superseded_contributions,
                          self.dropped_errors + other.dropped_errors)


class IngestSink:
    """Records decoded batches into this process's request recorder and error tracker."""

    def __init__(
        self,
        recorder: RequestRecorder,
        errors: ErrorTracker,
        guard: CardinalityGuard,
        clock: Clock,
        spans_win_seconds: float = SPANS_WIN_SECONDS,
    ) -> None:
        self.recorder = recorder
        self.errors = errors
        self.guard = guard
        self.clock = clock
        self.spans_win_seconds = spans_win_seconds
        self.counters = SinkResult()  # totals since this process started, for logs and tests
        self._lock = threading.Lock()
        self._spans_seen: dict[str, float] = {}  # service (as admitted) -> when its last span arrived

    # --- batches ---------------------------------------------------------------------------

    def record_traces(self, batch: TraceBatch) -> SinkResult:
        return self._record(batch.requests, (), batch.errors)

    def record_metrics(self, batch: MetricBatch) -> SinkResult:
        return self._record((), batch.contributions, ())

    def record_sentry(self, batch: SentryBatch) -> SinkResult:
        return self._record(batch.requests, (), batch.errors)

    # --- the work --------------------------------------------------------------------------

    def _record(
        self,
        requests: Iterable[IngestedRequest],
        contributions: Iterable[RequestContribution],
        errors: Iterable[IngestedError],
    ) -> SinkResult:
        now = self.clock.now()
        entries: dict[RollupKey, RequestAggregate] = {}
        # (service, route) repeat across a batch: ask the guard once for each.
        admitted: dict[tuple[str, str], tuple[str, str]] = {}
        span_services: set[str] = set()
        recorded = 0
        for request in requests:
            pair = (request.service, request.route)
            bounded = admitted.get(pair)
            if bounded is None:
                bounded = admitted[pair] = self.guard.admit(*pair)
            service, route = bounded
            span_services.add(service)
            key = _rollup_key(request.end_time, request.method, route, service)
            aggregate = entries.get(key)
            if aggregate is None:
                aggregate = entries[key] = RequestAggregate()
            aggregate.record(status_class(request.status), max(0.0, request.duration_seconds))
            recorded += 1
        superseded = 0
        with self._lock:
            for service in span_services:
                self._spans_seen[service] = now
            spans_seen = dict(self._spans_seen) if contributions else {}
        for contribution in contributions:
            service, route = self.guard.admit(contribution.service, contribution.route)
            seen = spans_seen.get(service)
            if seen is not None and now - seen <= self.spans_win_seconds:
                superseded += 1
                continue
            middle = (contribution.interval_start + contribution.interval_end) / 2
            self.recorder.record_histogram(service, contribution.method, route, contribution.status,
                                           contribution.histogram, middle)
            recorded += contribution.count
        if entries:
            # The recorder's merge of a whole aggregate (what a failed flush gives back): the
            # flush job then writes these minutes with the embedded app's own.
            self.recorder.restore(entries)
        error_count = dropped = 0
        for error in errors:
            if self._capture(self.guard.admit_error(error)):
                error_count += 1
            else:
                dropped += 1
        result = SinkResult(recorded, error_count, superseded, dropped)
        with self._lock:
            self.counters += result
        return result

    def _capture(self, error: IngestedError) -> bool:
        """One error into the tracker's pending groups (False when they are full)."""
        if error.source == "sentry" and ":" in error.location:
            module, _, function = error.location.partition(":")
        else:  # OTLP groups on the route: "where" shows "GET /tickets/<id>"
            module, function = error.location or error.route, ""
        return self.errors.record_error(
            service=error.service,
            fingerprint=error.fingerprint,
            exception_type=error.exception_type,
            message=error.message,
            stack_trace=error.stack,
            at=error.timestamp,
            route=error.route,
            module=module,
            function=function,
        )


def _rollup_key(moment: float, method: str, route: str, service: str) -> RollupKey:
    if method not in STANDARD_METHODS:
        method = OTHER_METHOD  # ingest's "_OTHER" is the recorder's "OTHER"
    if len(route) > MAX_ROUTE_LENGTH:
        route = route[:MAX_ROUTE_LENGTH]
    return RollupKey(moment - moment % MINUTE, method, route, False, service)
