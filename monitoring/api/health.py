"""/api/health/*: probes for load balancers and orchestrators, and the dependency health check."""
from __future__ import annotations

from typing import Any, Literal

from flask import Response, jsonify, request
from pydantic import ConfigDict, Field, RootModel

from monitoring.api import probes
from monitoring.api.auth import check_key, client_ip, require_key_unless_public
from monitoring.api.contract import (
    PUBLIC,
    Content,
    Document,
    ErrorBody,
    Flag,
    QueryModel,
    Timestamp,
    declare_served_as_is,
    endpoint,
)
from monitoring.api.errors import ApiError
from monitoring.api.probes import no_store
from monitoring.extension import current_monitoring
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

HealthStatus = Literal["healthy", "degraded", "unhealthy", "unknown"]


# --- the contract ---------------------------------------------------------------------------


class Liveness(Document):
    status: Literal["alive"]
    instance: str = Field(description="This worker: host:pid:random.")
    zone: str
    time: Timestamp


class Readiness(Document):
    status: Literal["ready"]
    time: Timestamp


class Circuit(Document):
    """The dependency's circuit breaker."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int = Field(alias="consecutiveFailures")
    next_trial_in: float | None = Field(alias="nextTrialIn", description="Seconds until the next trial call.")


class DependencyHealth(Document):
    status: HealthStatus
    response_time: float | None = Field(alias="responseTime", description="Milliseconds; null when not called.")
    checked_at: Timestamp | None = Field(alias="checkedAt")
    critical: bool
    error: str | None = Field(description="Generic and public: 'HTTP 500', 'connection refused', "
                                          "'timed out after 5s'.")
    circuit: Circuit | None = Field(description="Null for the database, whose breaker would live in it.")


class HealthDocument(Document):
    status: HealthStatus
    health_score: int | None = Field(ge=0, le=100, description="Critical dependencies weigh 3, others 1; healthy "
                                     "100%, degraded 50%, unhealthy 0%. Null before the first check.")
    checked_at: Timestamp | None = Field(alias="checkedAt", description="When the latest result was taken.")
    services: dict[str, DependencyHealth]


class OneDependencyHealth(DependencyHealth):
    service: str


class HealthAnswer(RootModel[Any]):
    """The whole health document, or one dependency's (``?service=``)."""

    model_config = ConfigDict(defer_build=True)
    root: HealthDocument | OneDependencyHealth


class IetfCheck(Document):
    component_id: str = Field(alias="componentId")
    component_type: str = Field(alias="componentType")
    observed_value: float | None = Field(None, alias="observedValue")
    observed_unit: Literal["ms"] | None = Field(None, alias="observedUnit")
    status: Literal["pass", "warn", "fail"]
    time: Timestamp | None = None
    output: str | None = None


class IetfHealth(Document):
    """draft-inadarei-api-health-check format."""

    status: Literal["pass", "warn", "fail"]
    description: str | None = None
    output: str | None = None
    checks: dict[str, list[IetfCheck]] = Field(description="Keyed component:measurement, e.g. database:responseTime.")


class HealthCheckQuery(QueryModel):
    service: str | None = Field(None, max_length=64,
                                description="Answer for this one dependency (404 lists the known names).")
    refresh: Flag = Field(False, description="Run the checks now (admin key; audited).")


class AcceptHealth(QueryModel):
    accept: Literal["application/json", "application/health+json"] | None = Field(
        None, alias="Accept", description="application/health+json for the IETF health-check format.")


_SCORE_HEADER = {
    "X-Health-Score": {"schema": {"type": "integer"},
                       "description": "The health score (or the one service's: 100, 50 or 0); absent before the "
                                      "first check."}
}
_IETF = (Content(HEALTH_JSON, model=IetfHealth),)


# --- the endpoints ------------------------------------------------------------------------


# The probes' views live in monitoring.api.probes (loaded without pydantic); declared here.
declare_served_as_is(probes.live, key=PUBLIC, responses={200: Liveness}, tags=["health"])
declare_served_as_is(probes.ready, key=PUBLIC, responses={200: Readiness, 503: ErrorBody}, tags=["health"],
                     descriptions={503: "Not ready: `error.reasons` lists what is down."})


@endpoint(
    key=None,
    security=[{}, {"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
    query=HealthCheckQuery,
    headers_model=AcceptHealth,
    responses={200: HealthAnswer, 404: ErrorBody, 503: HealthAnswer},
    extra_content={200: _IETF, 503: _IETF},
    headers={200: _SCORE_HEADER, 503: _SCORE_HEADER},
    descriptions={
        200: "Healthy or degraded.",
        404: "Unknown service; `error.known` lists the names.",
        503: "Unhealthy, or nothing checked yet: the same document.",
    },
    tags=["health"],
)
def check(query: HealthCheckQuery) -> Response:
    """Dependency health

    The latest stored result of every dependency check (database, Stripe, Brevo, HEALTH_CHECKS,
    custom checks): cheap, safe to poll, and free of secrets and internal addresses. 200 when
    healthy or degraded, 503 when unhealthy (a critical dependency is down) or unknown (nothing
    checked yet); the 503 body is the health document itself. Public on the service; on an app
    that embeds Centinela the read key is needed unless DASHBOARD_PUBLIC=true. `refresh=true`
    runs the checks now and needs the admin key (audited). Send `Accept: application/health+json`
    for the IETF health-check format.
    """
    monitoring = current_monitoring()
    health = monitoring.health
    name = query.service
    if query.refresh:
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
    snapshot = health.refresh() if query.refresh else health.snapshot()
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
    response.vary.add("Accept")
    return no_store(response)
