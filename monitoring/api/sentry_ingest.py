"""POST /api/<project>/envelope/ and /api/<project>/store/: the Sentry SDK protocol (ingest key).

A DSN is all a Sentry SDK needs: ``http://INGEST_KEY@centinela:8000/1``; SENTRY_PROJECTS
names the service of each project (``{"1": "shop"}``), an unknown project is 404 as Sentry
answers. The key comes from ``X-Sentry-Auth`` (or a ``Sentry ...`` Authorization), from
``?sentry_key=`` (browser SDKs; the access log redacts it like ``api_key``), or from the
envelope header's ``dsn``. Bodies may be chunked without Content-Length, gzip or deflate,
with no Content-Type at all (the JavaScript SDK sends none). Answers are Sentry's: 200
``{"id": ...}``; errors in the one JSON error shape; 429 with Retry-After and
X-Sentry-Rate-Limits, which SDKs honour by pausing. Browsers post cross-origin, so the
answers carry ``Access-Control-Allow-Origin: *`` (the key in a browser bundle is public by
design; it can only send).
"""
from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from monitoring.api.auth import check_key
from monitoring.api.blueprint import centinela_blueprint, client_address
from monitoring.api.errors import ApiError, api_error_response, error_response, http_exception_response
from monitoring.api.ingest_http import SHED_RETRY_AFTER_SECONDS, read_raw_body, remember_presented_key
from monitoring.extension import current_services
from monitoring.ingest.body import SENTRY_ENVELOPE_LIMITS, SENTRY_STORE_LIMITS, BodyLimits, decode_body
from monitoring.ingest.errors import IngestError
from monitoring.ingest.sentry_protocol import (
    SentryBatch,
    check_envelope_content_type,
    check_store_content_type,
    decode_envelope,
    decode_store,
    parse_sentry_auth,
    sentry_response,
)
from monitoring.security.keys import INGEST

_SENTRY_AUTH = "centinela_sentry_auth_error"


def presented_sentry_key() -> str | None:
    """The key of X-Sentry-Auth (or a ``Sentry ...`` Authorization) or ``?sentry_key=``; None when neither has one.

    Two different keys are refused later (401), by the view: here they count as none.
    """
    header = request.headers.get("X-Sentry-Auth")
    if not header:
        authorization = request.headers.get("Authorization", "")
        header = authorization if authorization[:7].lower() == "sentry " else None
    try:
        return parse_sentry_auth(header, request.args)
    except IngestError as error:
        g.setdefault(_SENTRY_AUTH, error)
        return None


bp = centinela_blueprint(
    "centinela_sentry_ingest",
    __name__,
    "/api",
    budgets=[("ingest", remember_presented_key(presented_sentry_key)), ("ingest_address", client_address)],
    body_limit=lambda settings: SENTRY_ENVELOPE_LIMITS.max_raw_bytes,
)


@bp.after_request
def _cross_origin(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "X-Sentry-Rate-Limits, Retry-After"
    if request.method == "OPTIONS":  # a preflight, when an SDK sets a header of its own
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Content-Encoding, X-Sentry-Auth"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    response = api_error_response(error)
    if error.status == 429:
        # retry_after:categories:scope: every category of this key pauses for that long.
        response.headers["X-Sentry-Rate-Limits"] = f"{error.headers.get('Retry-After', '60')}::key"
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    if error.code == 413:
        return error_response(413, "request body too large: Sentry envelopes are at most "
                              f"{SENTRY_ENVELOPE_LIMITS.max_raw_bytes} bytes as sent")
    return http_exception_response(error)


def _service_of(project: str) -> str:
    services = current_services()
    service = services.ingest.projects.get(project)
    if service is None:
        raise ApiError(404, f"project {project[:64]!r} is not in SENTRY_PROJECTS; add it there to name its service",
                       "unknown_project")
    return service


def _ingest(project: str, limits: BodyLimits, check_content_type: Any, decode: Any) -> Response:
    services = current_services()
    service = _service_of(project)
    presented = g.get("centinela_ingest_presented") or presented_sentry_key()
    conflict: IngestError | None = g.get(_SENTRY_AUTH)
    if conflict is not None:
        raise ApiError(conflict.status, conflict.message, conflict.code)
    if presented:
        check_key(INGEST, presented=presented)  # before any decoding: nobody else's bytes are read
    gate = services.ingest.gate
    if not gate.try_enter():
        raise ApiError(503, "Centinela is decoding as many events as it will at once; retry later",
                       headers={"Retry-After": str(SHED_RETRY_AFTER_SECONDS)})
    try:
        check_content_type(request.headers.get("Content-Type"))
        raw = read_raw_body(limits.max_raw_bytes)
        body = decode_body(raw, request.headers.get("Content-Encoding"), limits)
        batch: SentryBatch = decode(body, service=service, clock=services.clock)
    except IngestError as error:
        raise ApiError(error.status, error.message, error.code) from None
    finally:
        gate.leave()
    if not presented:
        check_key(INGEST, presented=batch.dsn_key)  # the envelope header's DSN, or 401
    services.ingest.sink.record_sentry(batch)
    return jsonify(sentry_response(batch))


@bp.post("/<project>/envelope/")
def envelope(project: str):  # type: ignore[no-untyped-def]
    return _ingest(project, SENTRY_ENVELOPE_LIMITS, check_envelope_content_type, decode_envelope)


@bp.post("/<project>/store/")
def store(project: str):  # type: ignore[no-untyped-def]
    return _ingest(project, SENTRY_STORE_LIMITS, check_store_content_type, decode_store)


def _sentry_operation(summary: str, description: str, body: str) -> dict[str, Any]:
    retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
    return {
        "summary": summary,
        "description": description,
        "tags": ["ingest"],
        "security": [{"SentryAuth": []}, {"SentryKeyQuery": []}, {}],
        "parameters": [
            {"name": "project", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "The DSN's project; SENTRY_PROJECTS names its service."},
        ],
        "requestBody": {
            "required": True,
            "description": body,
            "content": {"application/x-sentry-envelope": {}, "text/plain": {}, "application/json": {}},
        },
        "responses": {
            "200": {"description": "Accepted: the event's id ({} for an envelope without an event).",
                    "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"id": {"type": "string"}}}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
            "404": {"$ref": "#/components/responses/NotFound"},
            "413": {"$ref": "#/components/responses/PayloadTooLarge"},
            "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
            "429": {"description": "Over RATELIMIT_INGEST (per key) or RATELIMIT_INGEST_ADDRESS.",
                    "headers": {**retry, "X-Sentry-Rate-Limits": {
                        "schema": {"type": "string"}, "description": "retry_after::key, as Sentry sends it."}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "503": {"description": "This process is decoding as much as it will at once.", "headers": retry,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }


OPENAPI_PATHS = {
    "/api/{project}/envelope/": {
        "post": _sentry_operation(
            "Sentry envelope",
            "What Sentry SDKs send (DSN http://INGEST_KEY@host/PROJECT). Items of type event become error groups "
            "of the project's service (fingerprint: the SDK's, else exception type and top in-app frame), "
            "transactions of op http.server become requests; sessions, client reports, attachments, replays and "
            "every other item type are accepted and dropped. An event or transaction item is at most 1 MiB.",
            "An envelope: gzip or deflate, at most 40 MiB as sent and 100 MiB inflated; any or no Content-Type "
            "of application/x-sentry-envelope, text/plain, multipart/form-data, x-www-form-urlencoded.",
        )
    },
    "/api/{project}/store/": {
        "post": _sentry_operation(
            "Sentry store (older SDKs)",
            "One event as JSON (or base64 of zlib'd JSON, from very old SDKs), handled as an envelope's event.",
            "One event, at most 1 MiB inflated.",
        )
    },
}
