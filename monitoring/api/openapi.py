"""/api/openapi.json: the OpenAPI 3.1 document of Centinela's own routes (under URL_PREFIX),
assembled from each blueprint module's OPENAPI_PATHS. A host app's routes are not in it: the
host's own OpenAPI, if it has one, stays the host's."""
from __future__ import annotations

import importlib
from typing import Any

from flask import jsonify

from monitoring.api.blueprint import centinela_blueprint
from monitoring.extension import current_monitoring

bp = centinela_blueprint("centinela_openapi", __name__, "/api")

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
    },
    "schemas": {
        "Error": _ERROR_SCHEMA,
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "kind": {"type": "string"},
                "actor": {"type": "string", "description": "Key id (role and hash prefix), never the key."},
                "action": {"type": "string"},
                "clientIp": {"type": "string", "description": "Anonymised client address."},
                "path": {"type": "string"},
                "detail": {"type": "object"},
            },
        },
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


def build_document(version: str = "0.1.0", url_prefix: str = "") -> dict[str, Any]:
    from monitoring.extension import API_MODULES

    paths: dict[str, Any] = {}
    for name in API_MODULES:
        paths.update({url_prefix + path: item for path, item in importlib.import_module(name).OPENAPI_PATHS.items()})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Centinela",
            "version": version,
            "description": "Production monitoring and alerting: health, uptime, metrics, alerts, dashboard. "
            "Every error answers with the Error schema.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": COMPONENTS,
    }


@bp.get("/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    monitoring = current_monitoring()
    if monitoring.openapi_document is None:
        from monitoring.extension import package_version

        monitoring.openapi_document = build_document(package_version("centinela") or "dev",
                                                     monitoring.settings.url_prefix)
    return jsonify(monitoring.openapi_document)


OPENAPI_PATHS = {
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {"description": "The OpenAPI 3.1 document.", "content": {"application/json": {}}},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
