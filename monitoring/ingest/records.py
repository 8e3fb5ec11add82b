"""What the decoders hand on: requests, errors and latency contributions, already scrubbed.

Every text field of these values has passed the PII sanitiser (monitoring.ingest.text) and
is bounded in length; nothing a sender sent that is not named here is kept. Times are epoch
seconds (UTC), durations seconds.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from monitoring.metrics.histogram import LatencyHistogram

UNKNOWN_SERVICE = "unknown_service"
MAX_SERVICE_CHARS = 100
MAX_TYPE_CHARS = 200
MAX_MESSAGE_CHARS = 1_000
MAX_STACK_CHARS = 16_000


@dataclass(frozen=True)
class IngestedRequest:
    """One finished server request, from an OTLP server span or a Sentry http.server transaction."""

    service: str
    method: str  # a known HTTP method or "_OTHER"
    route: str  # a template, "<unmatched>" when the sender named none
    status: int  # 0 when the sender gave none
    duration_seconds: float
    end_time: float


@dataclass(frozen=True)
class StackFrame:
    """One frame of a Sentry stack trace (local variables are never kept)."""

    function: str
    module: str
    filename: str
    lineno: int | None
    in_app: bool
    context_line: str = ""


@dataclass(frozen=True)
class IngestedError:
    """One captured exception (or error message), ready to be grouped.

    ``fingerprint`` is 16 hex digits, like the embedded tracker's keys. It always hashes the
    service, so two services' groups never merge even in a store keyed by fingerprint alone;
    what else it hashes depends on the source (see otlp_traces and sentry_events).
    ``location`` names what the fingerprint groups on, for display.
    """

    service: str
    fingerprint: str
    exception_type: str
    message: str
    stack: str
    timestamp: float
    source: str  # "otlp" or "sentry"
    location: str = ""
    method: str = ""
    route: str = ""  # the route label, "GET /tickets/<id>", when the error happened in a request
    level: str = "error"
    release: str | None = None
    environment: str | None = None
    event_id: str | None = None
    frames: tuple[StackFrame, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, eq=False)
class RequestContribution:
    """Requests of one (service, method, route, status) over one interval, from an OTLP histogram.

    ``histogram`` is in the store's layout; ``max_relative_error`` is the worst relative error
    of a quantile read from it, conversion included (``inf`` when a bucket has no finite
    bound: an explicit bucket from 0, or the overflow bucket without a max).
    """

    service: str
    method: str
    route: str
    status: int
    interval_start: float
    interval_end: float
    histogram: LatencyHistogram = field(repr=False)
    max_relative_error: float

    @property
    def count(self) -> int:
        return self.histogram.count


def fingerprint_key(*parts: str) -> str:
    """16 hex digits of SHA-256 over ``parts`` joined by NUL, the embedded tracker's key format."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()[:16]
