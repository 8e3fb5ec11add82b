"""OTLP traces: server spans become requests, their recorded exceptions become errors.

* A span of kind SERVER is one request: service from the resource's ``service.name``
  (``unknown_service`` without one), route from ``http.route`` (``<unmatched>`` without one:
  never ``url.path``, ``http.target`` or the span name, which may hold the raw URL), method
  from ``http.request.method`` or the older ``http.method``, status from
  ``http.response.status_code`` or the older ``http.status_code``, duration from the start and
  end times. All other attributes are dropped unread.
* Spans of other kinds are ignored (counted, not rejected). Their exceptions are ignored too:
  an exception that escapes a request is recorded on the server span as well, and a child
  span's exception was often handled (a retried query), so reading both would count twice.
* A server span with unbelievable times (see timestamps.TimestampBounds: before 2000, more
  than a day ahead of our clock, ending before it starts, lasting more than an hour) is
  rejected with its exceptions, and counted for ``partial_success.rejected_spans``.
* A span event named ``exception`` on a server span is one error: type, message and stack
  trace from ``exception.type``, ``exception.message``, ``exception.stacktrace``, at the
  event's time. Its fingerprint is the service and exception type plus the route label
  (``GET /tickets/<id>``): stack trace text is language-specific, so no frame is parsed
  out of it, and the route is where the sender's framework says the error happened.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from monitoring.clock import Clock
from monitoring.ingest.otlp_encoding import (
    OtlpEncoding,
    OtlpResponse,
    encoding_of,
    parse_request,
    trace_response,
    wanted_attributes,
)
from monitoring.ingest.records import (
    MAX_MESSAGE_CHARS,
    MAX_SERVICE_CHARS,
    MAX_STACK_CHARS,
    MAX_TYPE_CHARS,
    UNKNOWN_SERVICE,
    IngestedError,
    IngestedRequest,
    fingerprint_key,
)
from monitoring.ingest.routes import clean_route, normalise_method, parse_status, route_label
from monitoring.ingest.text import clean_long_text, clean_text
from monitoring.ingest.timestamps import DEFAULT_BOUNDS, NANOS, TimestampBounds, summarise_rejections

SERVICE_NAME = "service.name"
_SERVICE_ATTRIBUTES = frozenset({SERVICE_NAME})
_SPAN_ATTRIBUTES = frozenset(
    {"http.route", "http.request.method", "http.method", "http.response.status_code", "http.status_code"}
)
_EXCEPTION_ATTRIBUTES = frozenset({"exception.type", "exception.message", "exception.stacktrace"})
_SERVER = Span.SpanKind.SPAN_KIND_SERVER


@dataclass(frozen=True)
class TraceBatch:
    """What one ExportTraceServiceRequest held, decoded."""

    encoding: OtlpEncoding
    requests: tuple[IngestedRequest, ...] = ()
    errors: tuple[IngestedError, ...] = ()
    rejected_spans: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    ignored_spans: int = 0  # spans of other kinds than SERVER

    @property
    def error_message(self) -> str:
        """The partial_success message: what was rejected and why ("" when nothing was)."""
        return summarise_rejections(self.rejection_reasons, "span")

    def response(self) -> OtlpResponse:
        """The ExportTraceServiceResponse to answer with, in the request's encoding."""
        return trace_response(self.rejected_spans, self.error_message, self.encoding)


def service_of(attributes: Iterable[KeyValue]) -> str:
    """The resource's ``service.name``, scrubbed; ``unknown_service`` when absent or empty."""
    found = wanted_attributes(attributes, _SERVICE_ATTRIBUTES)
    name = found.get(SERVICE_NAME)
    service = clean_text(name.strip(), MAX_SERVICE_CHARS).strip() if isinstance(name, str) else ""
    return service or UNKNOWN_SERVICE


def decode_traces(
    body: bytes,
    content_type: str | None,
    *,
    clock: Clock,
    bounds: TimestampBounds = DEFAULT_BOUNDS,
) -> TraceBatch:
    """Decode an (already inflated) OTLP/HTTP traces body.

    Raises UnsupportedMediaType (415) or UndecodableBody (400); spans it cannot believe are
    counted in the batch, not raised.
    """
    encoding = encoding_of(content_type)
    request = parse_request(body, encoding, ExportTraceServiceRequest)
    requests: list[IngestedRequest] = []
    errors: list[IngestedError] = []
    reasons: dict[str, int] = {}
    ignored = 0
    now = clock.now()
    # Routes and methods repeat across a batch: clean each distinct one once.
    routes: dict[str, str] = {}
    methods: dict[object, str] = {}
    for resource_spans in request.resource_spans:
        service = service_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if span.kind != _SERVER:
                    ignored += 1
                    continue
                start = span.start_time_unix_nano / NANOS
                end = span.end_time_unix_nano / NANOS
                reason = bounds.check_interval(start, end, now)
                if reason is not None:
                    reasons[reason] = reasons.get(reason, 0) + 1
                    continue
                attributes = wanted_attributes(span.attributes, _SPAN_ATTRIBUTES)
                raw_route = attributes.get("http.route")
                if isinstance(raw_route, str):
                    route = routes.get(raw_route)
                    if route is None:
                        route = routes[raw_route] = clean_route(raw_route)
                else:
                    route = clean_route(None)
                raw_method = attributes.get("http.request.method", attributes.get("http.method"))
                method = methods.get(raw_method)
                if method is None:
                    method = methods[raw_method] = normalise_method(raw_method)
                status = parse_status(attributes.get("http.response.status_code", attributes.get("http.status_code")))
                duration = (span.end_time_unix_nano - span.start_time_unix_nano) / NANOS
                requests.append(IngestedRequest(service, method, route, status, duration, end))
                if span.events:
                    errors.extend(_span_errors(span, service, method, route, start, end))
    return TraceBatch(
        encoding=encoding,
        requests=tuple(requests),
        errors=tuple(errors),
        rejected_spans=sum(reasons.values()),
        rejection_reasons=reasons,
        ignored_spans=ignored,
    )


def _span_errors(span: Span, service: str, method: str, route: str, start: float, end: float) -> list[IngestedError]:
    label = route_label(method, route)
    found: list[IngestedError] = []
    for event in span.events:
        if event.name != "exception":
            continue
        attributes = wanted_attributes(event.attributes, _EXCEPTION_ATTRIBUTES)
        raw_type = attributes.get("exception.type")
        raw_message = attributes.get("exception.message")
        if not isinstance(raw_type, str) and not isinstance(raw_message, str):
            continue  # the semantic conventions require one of them
        exception_type = clean_text(raw_type, MAX_TYPE_CHARS) if isinstance(raw_type, str) else ""
        exception_type = exception_type or "Exception"
        message = clean_text(raw_message, MAX_MESSAGE_CHARS) if isinstance(raw_message, str) else ""
        raw_stack = attributes.get("exception.stacktrace")
        stack = clean_long_text(raw_stack, MAX_STACK_CHARS) if isinstance(raw_stack, str) else ""
        # An event time outside its span is a sender bug: the span's end is the better guess.
        moment = event.time_unix_nano / NANOS
        if not start <= moment <= end:
            moment = end
        found.append(
            IngestedError(
                service=service,
                fingerprint=fingerprint_key(service, exception_type, label),
                exception_type=exception_type,
                message=message,
                stack=stack,
                timestamp=moment,
                source="otlp",
                location=label,
                method=method,
                route=label,
            )
        )
    return found
