"""/api/monitoring/errors (metrics key): the error groups that error tracking stored.

The capture itself (Flask's ``got_request_exception``) is connected by the extension, the
tracker and its flush are built in the composition root (``monitoring.services``).
"""
from __future__ import annotations

from flask import jsonify

from monitoring.api.auth import require_key
from monitoring.api.blueprint import centinela_blueprint
from monitoring.api.metrics import SERVICE_PARAMETER, service_arg
from monitoring.api.params import int_arg, time_arg
from monitoring.errors.tracking import list_error_groups
from monitoring.extension import current_services
from monitoring.security.keys import METRICS

MAX_LIMIT = 200

bp = centinela_blueprint("centinela_errors", __name__, "/api/monitoring")


@bp.get("/errors")
@require_key(METRICS)
def errors():  # type: ignore[no-untyped-def]
    monitoring = current_services()
    limit = int_arg("limit", 50, 1, MAX_LIMIT)
    assert limit is not None  # it has a default
    groups = list_error_groups(monitoring.store, since=time_arg("since"), limit=limit, service=service_arg())
    return jsonify({"groups": [group.to_json() for group in groups]})


_GROUP = {
    "type": "object",
    "properties": {
        "fingerprint": {"type": "string", "description": "Hash of the exception type and the innermost frame of "
                                                        "the app's own code."},
        "service": {"type": "string", "description": "The service the errors came from."},
        "type": {"type": "string"},
        "where": {"type": "string", "description": "module:function of that frame."},
        "line": {"type": "integer", "description": "Line of the latest occurrence."},
        "route": {"type": "string", "description": "Method and URL rule of the latest occurrence."},
        "message": {"type": "string", "description": "Sanitised."},
        "count": {"type": "integer"},
        "firstSeen": {"type": "string", "format": "date-time"},
        "lastSeen": {"type": "string", "format": "date-time"},
        "stackTrace": {"type": "string", "description": "Sanitised trace of the latest occurrence."},
    },
}

OPENAPI_PATHS = {
    "/api/monitoring/errors": {
        "get": {
            "summary": "Error groups",
            "description": "Unhandled exceptions of the monitored app grouped by fingerprint, most recently seen "
            "first, each with its count, first and last seen and one sanitised stack trace. Captures reach the "
            "store on the next flush (METRICS_FLUSH_INTERVAL).",
            "tags": ["errors"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"},
                 "description": "Only groups last seen at or after this time."},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}},
                SERVICE_PARAMETER,
            ],
            "responses": {
                "200": {
                    "description": "The groups.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["groups"],
                                "properties": {"groups": {"type": "array", "items": _GROUP}},
                            }
                        }
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
