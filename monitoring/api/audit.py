"""/api/monitoring/audit: page through the audit log, or export a date range as CSV."""
from __future__ import annotations

from flask import Response, g, jsonify, request, stream_with_context

from monitoring.api.auth import client_ip, require_key
from monitoring.api.blueprint import centinela_blueprint
from monitoring.api.errors import ApiError
from monitoring.api.params import MAX_ID, int_arg, time_arg
from monitoring.clock import isoformat
from monitoring.extension import current_monitoring
from monitoring.security.audit import ADMIN_ACTION, KINDS, render_csv
from monitoring.security.keys import ADMIN

bp = centinela_blueprint("centinela_audit", __name__, "/api/monitoring")

MAX_PAGE = 500


@bp.get("/audit")
@require_key(ADMIN)
def audit():  # type: ignore[no-untyped-def]
    log = current_monitoring().audit
    since, until = time_arg("since"), time_arg("until")
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ApiError(400, f"kind must be one of: {', '.join(KINDS)}", "invalid_parameter")
    output = request.args.get("format", "json")
    if output == "csv":
        # Exporting the audit trail is itself an admin action worth a line in it.
        log.record(
            ADMIN_ACTION,
            g.api_key.key_id,
            "audit.export",
            client_ip=client_ip(),
            path=request.path,
            detail={"since": isoformat(since), "until": isoformat(until), "kind": kind},
        )
        filename = "centinela-audit.csv"
        return Response(
            stream_with_context(render_csv(log.iter_range(since, until, kind))),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if output != "json":
        raise ApiError(400, "format must be json or csv", "invalid_parameter")
    limit = int_arg("limit", 100, 1, MAX_PAGE)
    before = int_arg("before", None, 1, MAX_ID)
    entries = log.page(since=since, until=until, kind=kind, before_id=before, limit=limit)
    next_before = entries[-1].id if len(entries) == limit else None
    return jsonify(
        {
            "entries": [e.to_json() for e in entries],
            "next": {"before": next_before} if next_before else None,
        }
    )


_TIME = {"type": "string", "description": "RFC 3339 timestamp (or epoch seconds)."}

OPENAPI_PATHS = {
    "/api/monitoring/audit": {
        "get": {
            "summary": "Audit log",
            "description": "Admin actions, configuration changes and refused access attempts, newest first. "
            "`format=csv` exports the range oldest first for compliance reporting.",
            "tags": ["security"],
            "security": [{"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "since", "in": "query", "schema": _TIME},
                {"name": "until", "in": "query", "schema": _TIME},
                {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1},
                 "description": "Page on: the `next.before` value of the previous page."},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv"]}},
            ],
            "responses": {
                "200": {
                    "description": "A page of entries, or a CSV file.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                                    "next": {"type": ["object", "null"]},
                                },
                            }
                        },
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
