"""/api/health/*: probes for load balancers and orchestrators, and the dependency health check."""
from __future__ import annotations

from typing import Any

from flask import jsonify, request

from monitoring.api.auth import check_key, client_ip, require_key_unless_public
from monitoring.api.blueprint import centinela_blueprint, client_address
from monitoring.api.errors import ApiError
from monitoring.api.params import flag_arg
from monitoring.clock import isoformat
from monitoring.extension import current_monitoring, current_services
from monitoring.health.report import (
    HEALTH_JSON,
    render_health,
    render_health_ietf,
    render_service_health,
    service_score,
)
from monitoring.health.status import is_serving
from monitoring.security.audit import ADMIN_ACTION
from monitoring.security.keys import ADMIN

# Load balancers poll these: a budget of their own (RATELIMIT_HEALTH), instead of the default.
bp = centinela_blueprint("centinela_health", __name__, "/api/health", budgets=[("health", client_address)])


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/live")
def live():  # type: ignore[no-untyped-def]
    """Liveness: the process answers. Calls no dependency, so a database outage never restarts us."""
    services = current_services()
    return _no_store(jsonify(
        {
            "status": "alive",
            "instance": services.scheduler.instance_id,
            "zone": services.settings.zone,
            "time": isoformat(services.clock.now()),
        }
    ))


@bp.get("/check")
def check():  # type: ignore[no-untyped-def]
    """Dependency health from the store; ``refresh=true`` (admin) runs the checks first."""
    monitoring = current_monitoring()
    health = monitoring.health
    refresh = flag_arg("refresh")
    name = request.args.get("service")
    if refresh:
        key = check_key(ADMIN)
        monitoring.audit.record(
            ADMIN_ACTION, key.key_id, "health.refresh", client_ip=client_ip(), path=request.path,
            detail={"service": name},
        )
    else:
        require_key_unless_public()
    known = health.service_names()
    if name is not None and name not in known:
        raise ApiError(404, f"no service {name!r}; known: {', '.join(known)}", "unknown_service", known=known)
    snapshot = health.refresh() if refresh else health.snapshot()
    ietf = request.accept_mimetypes.best_match(["application/json", HEALTH_JSON]) == HEALTH_JSON
    if name is None:
        status, score = snapshot.status, snapshot.score
        body = render_health_ietf(snapshot) if ietf else render_health(snapshot)
    else:
        status, score = snapshot.services[name].status, service_score(snapshot.services[name])
        body = render_health_ietf(snapshot, only=name) if ietf else render_service_health(snapshot, name)
    response = jsonify(body)
    if ietf:
        response.mimetype = HEALTH_JSON
    response.status_code = 200 if is_serving(status) else 503
    if score is not None:
        response.headers["X-Health-Score"] = str(score)
    return _no_store(response)


@bp.get("/ready")
def ready():  # type: ignore[no-untyped-def]
    """Readiness: the store answers a real query and no critical dependency is unhealthy."""
    monitoring = current_monitoring()
    readiness = monitoring.health.readiness()
    if not readiness.ready:
        raise ApiError(503, "not ready: " + "; ".join(readiness.reasons), "not_ready", reasons=readiness.reasons)
    return _no_store(jsonify({"status": "ready", "time": isoformat(monitoring.clock.now())}))


# --- OpenAPI ---------------------------------------------------------------------------------

_STATUS = {"type": "string", "enum": ["healthy", "degraded", "unhealthy", "unknown"]}
_SERVICE = {
    "type": "object",
    "required": ["status", "responseTime", "checkedAt", "critical", "error", "circuit"],
    "properties": {
        "status": _STATUS,
        "responseTime": {"type": ["number", "null"], "description": "Milliseconds; null when not called."},
        "checkedAt": {"type": ["string", "null"], "format": "date-time"},
        "critical": {"type": "boolean"},
        "error": {"type": ["string", "null"],
                  "description": "Generic and public: 'HTTP 500', 'connection refused', 'timed out after 5s'."},
        "circuit": {
            "type": ["object", "null"],
            "description": "The dependency's circuit breaker (null for the database, whose breaker would live in it).",
            "properties": {
                "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
                "consecutiveFailures": {"type": "integer"},
                "nextTrialIn": {"type": ["number", "null"], "description": "Seconds until the next trial call."},
            },
        },
    },
}
_HEALTH_DOCUMENT = {
    "type": "object",
    "required": ["status", "health_score", "checkedAt", "services"],
    "properties": {
        "status": _STATUS,
        "health_score": {"type": ["integer", "null"], "minimum": 0, "maximum": 100,
                         "description": "Critical dependencies weigh 3, others 1; healthy 100%, degraded 50%, "
                                        "unhealthy 0%. Null before the first check."},
        "checkedAt": {"type": ["string", "null"], "format": "date-time",
                      "description": "When the latest result was taken."},
        "services": {"type": "object", "additionalProperties": _SERVICE},
    },
}
_ONE_SERVICE = {
    "type": "object",
    "required": ["service", *_SERVICE["required"]],
    "properties": {"service": {"type": "string"}, **_SERVICE["properties"]},
}
_IETF_DOCUMENT = {
    "type": "object",
    "description": "draft-inadarei-api-health-check format.",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
        "description": {"type": "string"},
        "output": {"type": "string"},
        "checks": {
            "type": "object",
            "description": "Keyed component:measurement, e.g. database:responseTime.",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "componentId": {"type": "string"},
                        "componentType": {"type": "string"},
                        "observedValue": {"type": "number"},
                        "observedUnit": {"const": "ms"},
                        "status": {"type": "string", "enum": ["pass", "warn", "fail"]},
                        "time": {"type": "string", "format": "date-time"},
                        "output": {"type": "string"},
                    },
                },
            },
        },
    },
}
_SCORE_HEADER = {
    "X-Health-Score": {"schema": {"type": "integer"},
                       "description": "The health score (or the one service's: 100, 50 or 0); absent before the first check."}
}


def _health_content(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "application/json": {"schema": {"oneOf": [document, _ONE_SERVICE]}},
        HEALTH_JSON: {"schema": _IETF_DOCUMENT},
    }


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
    },
    "/api/health/check": {
        "get": {
            "summary": "Dependency health",
            "description": "The latest stored result of every dependency check (database, Stripe, Brevo, "
            "HEALTH_CHECKS, custom checks): cheap, safe to poll, public, and free of secrets and internal "
            "addresses. 200 when healthy or degraded, 503 when unhealthy (a critical dependency is down) or "
            "unknown (nothing checked yet); the 503 body is the health document itself. "
            "`refresh=true` runs the checks now and needs the admin key (audited). "
            "Send `Accept: application/health+json` for the IETF health-check format.",
            "tags": ["health"],
            "security": [{}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "service", "in": "query", "schema": {"type": "string"},
                 "description": "Answer for this one dependency (404 lists the known names)."},
                {"name": "refresh", "in": "query", "schema": {"type": "boolean"},
                 "description": "Run the checks now (admin key)."},
                {"name": "Accept", "in": "header", "schema": {"type": "string", "enum": ["application/json", HEALTH_JSON]}},
            ],
            "responses": {
                "200": {"description": "Healthy or degraded.", "headers": _SCORE_HEADER,
                        "content": _health_content(_HEALTH_DOCUMENT)},
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "404": {"description": "Unknown service; `error.known` lists the names.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "429": {"$ref": "#/components/responses/RateLimited"},
                "503": {"description": "Unhealthy, or nothing checked yet: the same document.",
                        "headers": _SCORE_HEADER, "content": _health_content(_HEALTH_DOCUMENT)},
            },
        }
    },
    "/api/health/ready": {
        "get": {
            "summary": "Readiness probe",
            "description": "200 when the store answers a real query and no critical dependency is unhealthy; "
            "otherwise 503 with the reasons (`error.reasons`).",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Ready.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status", "time"],
                                "properties": {
                                    "status": {"const": "ready"},
                                    "time": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    },
                },
                "429": {"$ref": "#/components/responses/RateLimited"},
                "503": {"$ref": "#/components/responses/Unavailable"},
            },
        }
    },
}
