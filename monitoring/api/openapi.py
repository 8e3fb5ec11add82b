"""/api/openapi.json: the OpenAPI 3.1 document of Centinela's own routes (under URL_PREFIX),
generated from the ``@endpoint`` declarations (``monitoring.api.contract``), with the few entries
of routes that are not declared views (a module's ``OPENAPI_PATHS``). A host app's routes are not
in it: the host's own OpenAPI, if it has one, stays the host's."""
from __future__ import annotations

import importlib
from typing import Any

from flask import Response, current_app, jsonify

from monitoring.api.contract import PUBLIC, Content, endpoint
from monitoring.extension import current_monitoring

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": True,
        }
    },
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


COMPONENTS: dict[str, Any] = {
    "securitySchemes": {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                   "description": "METRICS_API_KEY (read) or ADMIN_API_KEY."},
        "AdminKey": {"type": "apiKey", "in": "header", "name": "X-Admin-Key", "description": "ADMIN_API_KEY."},
        "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key",
                        "description": "Either key as a query parameter, for compatibility; prefer the headers."},
        "IngestKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                      "description": "INGEST_API_KEY: sends telemetry, reads nothing (403 on every other endpoint)."},
        "IngestBearer": {"type": "http", "scheme": "bearer",
                         "description": "INGEST_API_KEY as Authorization: Bearer (OTEL_EXPORTER_OTLP_HEADERS)."},
        "SentryAuth": {"type": "apiKey", "in": "header", "name": "X-Sentry-Auth",
                       "description": "Sentry sentry_key=INGEST_API_KEY, ... as Sentry SDKs send it (from the DSN)."},
        "SentryKeyQuery": {"type": "apiKey", "in": "query", "name": "sentry_key",
                           "description": "INGEST_API_KEY in the query string, as browser Sentry SDKs send it."},
    },
    "schemas": {
        "Error": _ERROR_SCHEMA,
    },
    "responses": {
        "BadRequest": _error("A parameter or the body is not valid; the message says which."),
        "Unauthorized": _error("No key, or a wrong key."),
        "Forbidden": _error("The read key was sent where the admin key is needed."),
        "NotFound": _error("No such thing."),
        "PayloadTooLarge": _error("The body is larger than MAX_BODY_BYTES."),
        "UnsupportedMediaType": _error("The body is not JSON."),
        "RateLimited": _error(
            "Too many requests.",
            {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        ),
        "Unavailable": _error("A dependency is down."),
    },
}


def build_document(app: Any, version: str = "0.1.0", url_prefix: str = "",
                   modules: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The document: the endpoints declared with ``@endpoint`` (monitoring.api.contract) as spectree
    generates them from their models, and the hand-written OPENAPI_PATHS of ``modules`` (the
    blueprint modules the app serves; all of them by default)."""
    from monitoring.api.contract import openapi_document as generated_document
    from monitoring.extension import API_MODULES

    # Each view module declares its endpoints when imported: all of them first (a worker may not
    # have served every one yet).
    served = [importlib.import_module(name) for name in (API_MODULES if modules is None else modules)]
    document = generated_document(app, version)
    for module in served:
        paths = getattr(module, "OPENAPI_PATHS", {})
        document["paths"].update({url_prefix + path: item for path, item in paths.items()})
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(COMPONENTS["securitySchemes"])
    components.setdefault("schemas", {}).update(COMPONENTS["schemas"])
    components.setdefault("responses", {}).update(COMPONENTS["responses"])
    document["servers"] = [{"url": "/"}]
    document.pop("security", None)  # each operation says its own
    return document


@endpoint(key=PUBLIC, responses={200: None}, tags=["meta"],
          extra_content={200: (Content("application/json", "The OpenAPI 3.1 document."),)})
def openapi_document() -> Response:
    """This document"""
    return jsonify(document_of_current_app())


def document_of_current_app() -> dict[str, Any]:
    """The app's document, built on first use and kept on its extension (in an app context)."""
    monitoring = current_monitoring()
    if monitoring.openapi_document is None:
        from monitoring.extension import package_version

        monitoring.openapi_document = build_document(current_app, package_version("centinela") or "dev",
                                                     monitoring.settings.url_prefix, monitoring.api_modules)
    return monitoring.openapi_document
