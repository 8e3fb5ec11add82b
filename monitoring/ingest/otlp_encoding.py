"""OTLP/HTTP's two encodings: binary protobuf and JSON, for requests, answers and failures.

The messages are the ``opentelemetry-proto`` package's; JSON goes through protobuf's
``json_format``, which implements the proto3 JSON mapping the OTLP specification builds on
(lowerCamelCase keys, 64-bit integers as strings or numbers, enums as integers or names,
unknown fields ignored as the specification requires). One deviation the mapping does not
know: OTLP JSON writes ``traceId``, ``spanId`` and ``parentSpanId`` as hex strings, not base64.
Hex digits are valid base64, so ``json_format`` would silently decode them to wrong bytes;
they are rewritten to base64 before parsing (spans, span links and metric exemplars).

Answers use the request's encoding (the specification says the server MUST). Failures
carry a ``google.rpc.Status`` as the specification asks for 4xx and 5xx bodies.
"""
from __future__ import annotations

import base64
import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from monitoring.ingest.errors import UndecodableBody, UnsupportedMediaType

PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
# google.rpc.Code values (this specification does not use them, clients may log them).
INVALID_ARGUMENT = 3
RESOURCE_EXHAUSTED = 8
UNAVAILABLE = 14

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")

MessageT = TypeVar("MessageT", bound=Message)


class OtlpEncoding(enum.Enum):
    PROTOBUF = PROTOBUF_CONTENT_TYPE
    JSON = JSON_CONTENT_TYPE

    @property
    def content_type(self) -> str:
        return self.value


@dataclass(frozen=True)
class OtlpResponse:
    """An answer body and the Content-Type it goes with."""

    body: bytes
    content_type: str


def encoding_of(content_type: str | None) -> OtlpEncoding:
    """The encoding a request's Content-Type names; UnsupportedMediaType (415) for any other."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == PROTOBUF_CONTENT_TYPE:
        return OtlpEncoding.PROTOBUF
    if media_type == JSON_CONTENT_TYPE:
        return OtlpEncoding.JSON
    shown = f"Content-Type {media_type[:60]!r}" if media_type else "no Content-Type"
    raise UnsupportedMediaType(f"{shown}: OTLP/HTTP takes {PROTOBUF_CONTENT_TYPE} or {JSON_CONTENT_TYPE}")


def parse_request(body: bytes, encoding: OtlpEncoding, message_type: type[MessageT]) -> MessageT:
    """``body`` decoded as ``message_type``; UndecodableBody (400) when it does not decode."""
    if encoding is OtlpEncoding.PROTOBUF:
        try:
            return message_type.FromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise UndecodableBody(f"body is not a protobuf {message_type.DESCRIPTOR.name} ({_short(exc)})") from None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UndecodableBody(f"body is not JSON ({_short(exc)})") from None
    if not isinstance(document, dict):
        raise UndecodableBody(f"body is not a JSON object for {message_type.DESCRIPTOR.name}")
    _hex_ids_to_base64(document)
    try:
        return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise UndecodableBody(f"body is not OTLP JSON for {message_type.DESCRIPTOR.name} ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    # Parser messages name fields and types, never values; still, keep them short.
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return (item for item in value if isinstance(item, dict))
    return ()


def _hex_to_base64(holder: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = holder.get(key)
        if isinstance(value, str):
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise UndecodableBody(f"{key} is not a hex string") from None
            holder[key] = base64.b64encode(raw).decode("ascii")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP JSON's hex ids to the base64 the proto3 JSON mapping expects, in place."""
    for resource in _dicts(document.get("resourceSpans", document.get("resource_spans"))):
        for scope in _dicts(resource.get("scopeSpans", resource.get("scope_spans"))):
            for span in _dicts(scope.get("spans")):
                _hex_to_base64(span)
                for link in _dicts(span.get("links")):
                    _hex_to_base64(link)
    for resource in _dicts(document.get("resourceMetrics", document.get("resource_metrics"))):
        for scope in _dicts(resource.get("scopeMetrics", resource.get("scope_metrics"))):
            for metric in _dicts(scope.get("metrics")):
                for kind in _POINT_KINDS:
                    data = metric.get(kind)
                    if not isinstance(data, dict):
                        continue
                    for point in _dicts(data.get("dataPoints", data.get("data_points"))):
                        for exemplar in _dicts(point.get("exemplars")):
                            _hex_to_base64(exemplar)


def encode_message(message: Message, encoding: OtlpEncoding) -> OtlpResponse:
    """``message`` in ``encoding`` (JSON: proto3 mapping, lowerCamelCase, int64 as strings)."""
    if encoding is OtlpEncoding.PROTOBUF:
        return OtlpResponse(message.SerializeToString(), PROTOBUF_CONTENT_TYPE)
    document = json_format.MessageToDict(message)
    return OtlpResponse(json.dumps(document, separators=(",", ":")).encode("utf-8"), JSON_CONTENT_TYPE)


def trace_response(rejected_spans: int, error_message: str, encoding: OtlpEncoding) -> OtlpResponse:
    """ExportTraceServiceResponse: ``partial_success`` set only when something was rejected or said."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    return encode_message(response, encoding)


def metrics_response(rejected_data_points: int, error_message: str, encoding: OtlpEncoding) -> OtlpResponse:
    """ExportMetricsServiceResponse: ``partial_success`` set only when something was rejected or said."""
    response = ExportMetricsServiceResponse()
    if rejected_data_points or error_message:
        response.partial_success.rejected_data_points = rejected_data_points
        response.partial_success.error_message = error_message
    return encode_message(response, encoding)


def failure_response(message: str, encoding: OtlpEncoding, code: int = INVALID_ARGUMENT) -> OtlpResponse:
    """A ``google.rpc.Status`` body for a 4xx/5xx answer, in the request's encoding."""
    return encode_message(status_pb2.Status(code=code, message=message), encoding)


# --- attribute values -----------------------------------------------------------------------


def any_value(value: AnyValue) -> str | int | float | bool | None:
    """A scalar AnyValue as Python; None for arrays, maps, bytes and empty values (never kept)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return None


def wanted_attributes(attributes: Iterable[KeyValue], wanted: frozenset[str]) -> dict[str, str | int | float | bool]:
    """The scalar values of the attributes named in ``wanted``; all others are dropped unread."""
    found: dict[str, str | int | float | bool] = {}
    for attribute in attributes:
        if attribute.key in wanted:
            value = any_value(attribute.value)
            if value is not None:
                found[attribute.key] = value
    return found
