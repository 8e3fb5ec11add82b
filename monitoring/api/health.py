"""/api/health/*: probes for load balancers and orchestrators."""
from __future__ import annotations

from flask import Blueprint, jsonify

from monitoring.clock import isoformat
from monitoring.extension import current_monitoring

bp = Blueprint("health", __name__, url_prefix="/api/health")


@bp.get("/live")
def live():  # type: ignore[no-untyped-def]
    """Liveness: the process answers. Calls no dependency, so a database outage never restarts us."""
    monitoring = current_monitoring()
    return jsonify(
        {
            "status": "alive",
            "instance": monitoring.scheduler.instance.instance_id,
            "zone": monitoring.settings.zone,
            "time": isoformat(monitoring.clock.now()),
        }
    )


OPENAPI_PATHS = {
    "/api/health/live": {
        "get": {
            "summary": "Liveness probe",
            "description": "Answers 200 while the process serves requests; calls no dependency.",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The process is alive.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "instance", "zone", "time"],
                                "properties": {
                                    "status": {"const": "alive"},
                                    "instance": {"type": "string"},
                                    "zone": {"type": "string"},
                                    "time": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    },
                },
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
