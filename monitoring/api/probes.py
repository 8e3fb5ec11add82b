"""/api/health/live and /api/health/ready: what a load balancer asks every worker, every few seconds.

Kept apart from monitoring.api.health, and free of pydantic and the contract, because every
worker of a host app answers them: loading them costs a worker under 1 MB, where the health
module with its models costs about 9 MB (bench/bench_memory.py). Their OpenAPI declarations,
with their response models, are made in monitoring.api.health, which the document loads.
"""
from __future__ import annotations

from flask import Response, jsonify

from monitoring.api.errors import ApiError
from monitoring.clock import isoformat
from monitoring.extension import current_monitoring, current_services


def no_store(response: Response) -> Response:
    """A probe's or a health answer is of this moment: no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def live() -> Response:
    """Liveness probe

    Answers 200 while the process serves requests; calls no dependency, so a database outage
    never restarts it.
    """
    services = current_services()
    return no_store(jsonify(
        {
            "status": "alive",
            "instance": services.scheduler.instance_id,
            "zone": services.settings.zone,
            "time": isoformat(services.clock.now()),
        }
    ))


def ready() -> Response:
    """Readiness probe

    200 unless one of READINESS_DEPENDENCIES is down (default: the store and the database);
    otherwise 503 with the reasons (`error.reasons`). A payment provider that is down lowers the
    health score and alerts, but keeps instances in the load balancer's rotation.
    """
    monitoring = current_monitoring()
    readiness = monitoring.health.readiness()
    if not readiness.ready:
        raise ApiError(503, "not ready: " + "; ".join(readiness.reasons), "not_ready", reasons=readiness.reasons)
    return no_store(jsonify({"status": "ready", "time": isoformat(monitoring.clock.now())}))
