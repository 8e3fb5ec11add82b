"""/api/monitoring/metrics: the metrics export."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from monitoring.api.auth import require_key
from monitoring.api.errors import ApiError
from monitoring.clock import isoformat
from monitoring.extension import current_monitoring
from monitoring.security.keys import METRICS

bp = Blueprint("metrics", __name__, url_prefix="/api/monitoring")

CATEGORIES = ("system",)


def system_metrics() -> dict[str, object]:
    monitoring = current_monitoring()
    return {"scheduler": monitoring.scheduler.describe()}


@bp.get("/metrics")
@require_key(METRICS)
def metrics():  # type: ignore[no-untyped-def]
    category = request.args.get("category")
    if category is not None and category not in CATEGORIES:
        raise ApiError(400, f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}", "invalid_parameter")
    body: dict[str, object] = {"timestamp": isoformat(current_monitoring().clock.now())}
    if category in (None, "system"):
        body["system"] = system_metrics()
    return jsonify(body)


OPENAPI_PATHS = {
    "/api/monitoring/metrics": {
        "get": {
            "summary": "Metrics export",
            "tags": ["metrics"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "category", "in": "query", "schema": {"type": "string", "enum": list(CATEGORIES)}},
            ],
            "responses": {
                "200": {
                    "description": "Metrics by category.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
