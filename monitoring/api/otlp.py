"""POST /v1/traces and POST /v1/metrics: the OTLP/HTTP receiver (ingest key).

``OTEL_EXPORTER_OTLP_ENDPOINT=http://centinela:8000`` and
``OTEL_EXPORTER_OTLP_HEADERS=x-api-key=INGEST_KEY`` (or ``Authorization=Bearer INGEST_KEY``)
is all an OpenTelemetry SDK needs. Both encodings of the specification
(``application/x-protobuf``, ``application/json``), gzip or deflate. Every answer is in the
request's encoding, as the specification requires: 200 with the Export*ServiceResponse
(``partial_success`` when items were refused), and for every failure a ``google.rpc.Status``:
400 undecodable, 401/403 key, 413 too large (inflated included), 415 another content type
(answered in JSON, the request's encoding being unknown), 429 over the ingest rate limits and
503 when this process is already decoding as much as it will, both with Retry-After, which
SDKs honour. The decoding lives in monitoring.ingest; this module only moves bytes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from monitoring.api.auth import check_key
from monitoring.api.blueprint import centinela_blueprint, client_address
from monitoring.api.errors import ApiError, store_outage_errors, store_unavailable_response, unhandled_response
from monitoring.api.ingest_http import SHED_RETRY_AFTER_SECONDS, read_raw_body, remember_presented_key
from monitoring.extension import current_services
from monitoring.ingest.body import OTLP_BODY_LIMITS, decode_body
from monitoring.ingest.errors import IngestError
from monitoring.security.keys import INGEST

if TYPE_CHECKING:
    from monitoring.ingest.otlp_encoding import OtlpEncoding, OtlpResponse

# The protobuf stack (google.protobuf, opentelemetry.proto: about 3 MB of a worker's RSS) is
# imported with the first export or the first refusal, not when the blueprint is registered.

_ENCODING = "centinela_otlp_encoding"


def presented_otlp_key() -> str | None:
    """X-API-Key, or Authorization: Bearer (what OTEL_EXPORTER_OTLP_HEADERS can carry)."""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


bp = centinela_blueprint(
    "centinela_otlp",
    __name__,
    "/v1",
    budgets=[("ingest", remember_presented_key(presented_otlp_key)), ("ingest_address", client_address)],
    body_limit=lambda settings: OTLP_BODY_LIMITS.max_raw_bytes,
)


def _answer(answer: OtlpResponse, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(answer.body, status=status, content_type=answer.content_type)
    response.headers.update(headers or {})
    return response


def _encoding() -> OtlpEncoding:
    """The request's encoding for the answer; JSON when the request's content type is not OTLP's."""
    from monitoring.ingest.otlp_encoding import OtlpEncoding, encoding_of

    found: OtlpEncoding | None = g.get(_ENCODING)
    if found is None:
        try:
            found = encoding_of(request.headers.get("Content-Type"))
        except IngestError:
            found = OtlpEncoding.JSON
    return found


def _failure(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    from monitoring.ingest.otlp_encoding import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, failure_response

    code = {429: RESOURCE_EXHAUSTED, 503: UNAVAILABLE}.get(status, INVALID_ARGUMENT)
    response = _answer(failure_response(message, _encoding(), code), status, headers)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return _failure(error.status, error.message, error.headers)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    messages = {413: f"request body too large (at most {OTLP_BODY_LIMITS.max_raw_bytes} bytes)"}
    return _failure(status, messages.get(status) or error.description or error.name)


def _store_unavailable(error: Exception) -> Response:
    """The store's outage (a refusal's audit entry needs it) as a Status: 503, Retry-After, which SDKs retry."""
    answer = store_unavailable_response(error)  # the outage noted once, or a 500 for other SQL errors
    return _failure(answer.status_code, answer.get_json()["error"]["message"],
                    {"Retry-After": answer.headers["Retry-After"]} if "Retry-After" in answer.headers else None)


for _outage in store_outage_errors():
    bp.register_error_handler(_outage, _store_unavailable)


@bp.errorhandler(Exception)
def _unhandled(error: Exception) -> Response:
    unhandled_response(error)  # logged (sanitised) and sent to error tracking like any other
    return _failure(500, "internal error; the details are in the server log")


def _export(decode: Any, record: Any) -> Response:
    from monitoring.ingest.otlp_encoding import encoding_of

    services = current_services()
    check_key(INGEST, presented=g.get("centinela_ingest_presented") or presented_otlp_key())
    content_type = request.headers.get("Content-Type")
    try:
        g.setdefault(_ENCODING, encoding_of(content_type))
    except IngestError as error:
        return _failure(error.status, error.message)
    gate = services.ingest.gate
    if not gate.try_enter():
        return _failure(503, "Centinela is decoding as many exports as it will at once; retry later",
                        {"Retry-After": str(SHED_RETRY_AFTER_SECONDS)})
    try:
        raw = read_raw_body(OTLP_BODY_LIMITS.max_raw_bytes)
        body = decode_body(raw, request.headers.get("Content-Encoding"), OTLP_BODY_LIMITS)
        batch = decode(body, content_type, services)
    except IngestError as error:
        return _failure(error.status, error.message)
    finally:
        gate.leave()
    record(services.ingest.sink, batch)
    return _answer(batch.response())


@bp.post("/traces")
def export_traces():  # type: ignore[no-untyped-def]
    from monitoring.ingest.otlp_traces import decode_traces

    return _export(lambda body, content_type, services: decode_traces(body, content_type, clock=services.clock),
                   lambda sink, batch: sink.record_traces(batch))


@bp.post("/metrics")
def export_metrics():  # type: ignore[no-untyped-def]
    from monitoring.ingest.otlp_metrics import decode_metrics

    return _export(
        lambda body, content_type, services: decode_metrics(
            body, content_type, clock=services.clock, tracker=services.ingest.cumulative),
        lambda sink, batch: sink.record_metrics(batch),
    )


def _otlp_operation(summary: str, description: str, request_message: str, response_message: str,
                    partial: str) -> dict[str, Any]:
    status: dict[str, Any] = {"description": "A google.rpc.Status (code, message), in the request's encoding.",
              "content": {"application/x-protobuf": {}, "application/json": {"schema": {"type": "object"}}}}
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
    return {
        "summary": summary,
        "description": description,
        "tags": ["ingest"],
        "security": [{"IngestKey": []}, {"IngestBearer": []}],
        "requestBody": {
            "required": True,
            "description": f"An {request_message} (opentelemetry-proto), protobuf or proto3 JSON with hex ids; "
                           "Content-Encoding gzip or deflate. At most 64 MiB, inflated included.",
            "content": {"application/x-protobuf": {}, "application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {"description": f"Accepted: an {response_message}, with partial_success.{partial} and an "
                                   "error_message when some items were refused.",
                    "content": {"application/x-protobuf": {}, "application/json": {"schema": {"type": "object"}}}},
            "400": {**status, "description": "The body does not decode. " + status["description"]},
            "401": {**status, "description": "No key, or a wrong key. " + status["description"]},
            "403": {**status, "description": "A key other than the ingest (or admin) key. " + status["description"]},
            "413": {**status, "description": "The body is over 64 MiB, as sent or inflated. " + status["description"]},
            "415": {**status, "description": "Not application/x-protobuf or application/json, or an unknown "
                                             "Content-Encoding (answered in JSON). " + status["description"]},
            "429": {**status, "headers": retry,
                    "description": "Over RATELIMIT_INGEST (per key) or RATELIMIT_INGEST_ADDRESS. " + status["description"]},
            "503": {**status, "headers": retry,
                    "description": "This process is decoding as much as it will at once. " + status["description"]},
        },
    }


OPENAPI_PATHS = {
    "/v1/traces": {
        "post": _otlp_operation(
            "OTLP/HTTP traces",
            "Server spans (kind SERVER) become requests of their service (resource service.name) in the "
            "request figures: route from http.route (<unmatched> without one), method from http.request.method "
            "(or http.method), status from http.response.status_code (or http.status_code), duration from the "
            "start and end. Span events named exception become error groups. Other span kinds are ignored; spans "
            "with absurd times are refused (partial_success).",
            "ExportTraceServiceRequest", "ExportTraceServiceResponse", "rejected_spans",
        )
    },
    "/v1/metrics": {
        "post": _otlp_operation(
            "OTLP/HTTP metrics",
            "http.server.request.duration (s) and http.server.duration (ms), explicit or exponential histograms, "
            "delta or cumulative, feed the request figures of a service that sends no spans (spans win when it "
            "sends both). Every other metric is accepted and ignored.",
            "ExportMetricsServiceRequest", "ExportMetricsServiceResponse", "rejected_data_points",
        )
    },
}
