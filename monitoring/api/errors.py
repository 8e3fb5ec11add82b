"""One JSON error shape for every status: {"error": {"code", "message"}} (plus details where useful).

The handlers are registered on each Centinela blueprint (``monitoring.api.blueprint``), so they
answer for Centinela's own routes only; ``register_error_handlers(app)`` puts them on a whole
app, which the Centinela service does and a host app may choose to.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, got_request_exception, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """Raise from a view to answer with a JSON error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.headers = headers or {}
        self.details = details


def error_response(status: int, message: str, code: str | None = None, **details: Any) -> Response:
    body: dict[str, Any] = {"code": code or _CODES.get(status, "error"), "message": message}
    body.update(details)
    response = jsonify({"error": body})
    response.status_code = status
    if status >= 400:
        response.headers["Cache-Control"] = "no-store"
    return response


def api_error_response(error: ApiError) -> Response:
    response = error_response(error.status, error.message, error.code, **error.details)
    response.headers.update(error.headers)
    return response


def http_exception_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    messages = {
        404: f"no endpoint at {request.path}",
        405: f"{request.method} is not allowed here",
        413: "request body too large",
    }
    message = messages.get(status) or (exc.description or exc.name)
    response = error_response(status, message)
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def unhandled_response(exc: Exception) -> Response:
    # Flask sends got_request_exception only when no handler is registered for Exception;
    # ours is, so send it here: error tracking and sentry-sdk's Flask integration listen to it.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=exc)
    # The stack trace goes to the log (through the sanitiser), never into the response.
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal error; the details are in the server log")


# How long a client should wait before asking again while the store is unavailable: about
# the time the scheduler takes to notice that it is back (it probes it twice a second).
STORE_RETRY_AFTER_SECONDS = 5


def store_unavailable_response(exc: Exception) -> Response:
    """A request that needed the store while it does not answer: 503 store_unavailable, Retry-After.

    Not a 500 and not a traceback per request: the outage is logged once by the store's
    availability (``monitoring.store.database``), and error tracking is not told (it would
    only buffer the same outage again). Errors that merely look alike (bad SQL) stay 500s.
    """
    from monitoring.extension import current_monitoring
    from monitoring.store.database import is_store_unavailable

    if not is_store_unavailable(exc):
        return unhandled_response(exc)
    try:
        current_monitoring().store.availability.failed(exc)
    except Exception:  # an app without Centinela's extension: the answer is the same
        pass
    response = error_response(
        503, "the store does not answer; retry after the time in Retry-After", "store_unavailable"
    )
    response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
    return response


def store_outage_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's errors that may mean the store does not answer (store_unavailable_response tells)."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    return (OperationalError, InterfaceError, PoolTimeoutError)


def register_store_unavailable_handler(target: Any) -> None:
    """On a blueprint (or the service's app): SQLAlchemy's outage errors answer 503 store_unavailable."""
    for error_class in store_outage_errors():
        target.register_error_handler(error_class, store_unavailable_response)


def register_error_handlers(app: Flask) -> None:
    """Answer every error of ``app`` in the JSON shape (the service's choice; a host's is its own)."""
    app.register_error_handler(ApiError, api_error_response)
    app.register_error_handler(HTTPException, http_exception_response)
    register_store_unavailable_handler(app)
    app.register_error_handler(Exception, unhandled_response)


def json_body() -> Any:
    """The request's JSON body, read strictly (monitoring.api.json_body): 415, 413 or 400."""
    from monitoring.api.json_body import read_json

    return read_json()


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    data = json_body()
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__.replace("dict", "object").replace("str", "string")
        raise ApiError(400, f"the body must be a JSON object, not {kind}", "invalid_body")
    return data
