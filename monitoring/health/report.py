"""Health as documents: the JSON of /api/health/check, the IETF health+json format, and the
"health" category of the metrics export. Pure functions of a snapshot (and window figures)."""
from __future__ import annotations

import math
from typing import Any

from monitoring.clock import isoformat
from monitoring.health.circuit import OPEN, refused_by_breaker
from monitoring.health.results import HealthSnapshot, ServiceHealth, WindowStats
from monitoring.health.status import DEGRADED, HEALTHY, STATUS_VALUE, UNHEALTHY, weight
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow

HEALTH_JSON = "application/health+json"
IETF_STATUS = {HEALTHY: "pass", DEGRADED: "warn", UNHEALTHY: "fail"}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def public_error(service: ServiceHealth, now: float) -> str | None:
    """The service's error as shown; for an open breaker, with the time until its next trial.

    The latest result's own error always stays: the round that opened the breaker (or a failed
    trial) shows the dependency's answer (``HTTP 500; circuit open, next trial in 30s``), and the
    rounds the breaker refused show the error that opened it (``circuit open after HTTP 500: not
    called; next trial in 12s``). A half-open breaker's refusal says half-open, never open.
    """
    error = service.error or None
    circuit = service.circuit
    if circuit is None or circuit.state != OPEN:
        return error
    wait = circuit.next_trial_in(now)
    trial = f"next trial in {wait:.0f}s" if wait else "next trial due"
    if error is None:
        return f"circuit open; {trial}"
    if refused_by_breaker(error):
        return f"{error}; {trial}"
    return f"{error}; circuit open, {trial}"


def render_service(service: ServiceHealth, now: float) -> dict[str, Any]:
    circuit = service.circuit
    return {
        "status": service.status,
        "responseTime": _ms(service.response_time_ms),
        "checkedAt": isoformat(service.checked_at),
        "critical": service.critical,
        "error": public_error(service, now),
        "circuit": None
        if circuit is None
        else {
            "state": circuit.state,
            "consecutiveFailures": circuit.failures,
            "nextTrialIn": _ms(circuit.next_trial_in(now)),
        },
    }


def render_health(snapshot: HealthSnapshot) -> dict[str, Any]:
    """The /api/health/check document (the system description's shape, with times and breakers)."""
    return {
        "status": snapshot.status,
        "health_score": snapshot.score,
        "checkedAt": isoformat(snapshot.checked_at),
        "services": {name: render_service(s, snapshot.taken_at) for name, s in snapshot.services.items()},
    }


def render_service_health(snapshot: HealthSnapshot, name: str) -> dict[str, Any]:
    """One dependency, for ``?service=NAME``."""
    service = snapshot.services[name]
    return {"service": name, **render_service(service, snapshot.taken_at)}


def service_score(service: ServiceHealth) -> int | None:
    value = STATUS_VALUE.get(service.status)
    return None if value is None else int(round(100 * value))


def render_health_ietf(snapshot: HealthSnapshot, only: str | None = None) -> dict[str, Any]:
    """draft-inadarei-api-health-check: ``status`` pass/warn/fail and ``checks`` keyed component:measurement."""
    services = {only: snapshot.services[only]} if only else snapshot.services
    overall = snapshot.status if only is None else services[only].status
    checks: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for name, service in services.items():
        entry: dict[str, Any] = {
            "componentId": name,
            "componentType": service.component_type,
            "status": IETF_STATUS.get(service.status, "warn"),
        }
        if service.response_time_ms is not None:
            entry["observedValue"] = _ms(service.response_time_ms)
            entry["observedUnit"] = "ms"
        if service.checked_at is not None:
            entry["time"] = isoformat(service.checked_at)
        error = public_error(service, snapshot.taken_at)
        if service.status != HEALTHY and error:
            entry["output"] = error
            problems.append(f"{name}: {error}")
        checks[f"{name}:responseTime"] = [entry]
    document: dict[str, Any] = {
        # unknown overall (nothing checked yet) answers 503, so it is a "fail" here too
        "status": IETF_STATUS.get(overall, "fail"),
        "description": "Centinela: health of the dependencies",
    }
    if problems:
        document["output"] = "; ".join(problems)
    document["checks"] = checks
    return document


def build_category_report(snapshot: HealthSnapshot, stats: dict[str, WindowStats], window: TimeWindow) -> CategoryReport:
    """The current state plus, per dependency, how it did within the window.

    Every configured dependency has its Prometheus series from the first scrape: a figure not
    measured yet (no round so far, a call the breaker refused) is NaN, Prometheus' "no value",
    rather than absent (dashboards would show "No data" and rules miss the first change) or 0
    (which would read "down"). Datadog takes no NaN: those points are not sent.
    """
    from prometheus_client.metrics_core import GaugeMetricFamily

    score = snapshot.score
    up = GaugeMetricFamily("centinela_dependency_up", "1 when the dependency answers (healthy or degraded).",
                           labels=["service", "critical"])
    response = GaugeMetricFamily("centinela_dependency_response_seconds", "Latest health-check response time.",
                                 labels=["service"])
    availability = GaugeMetricFamily("centinela_dependency_availability_ratio",
                                     "Share of health checks in the window in which the dependency answered.",
                                     labels=["service"])
    breaker_open = GaugeMetricFamily("centinela_circuit_breaker_open", "1 while the breaker is open or half-open.",
                                     labels=["service"])
    health_score = GaugeMetricFamily("centinela_health_score", "Weighted health score, 0-100.")
    points: list[DatadogPoint] = []
    services_json: dict[str, Any] = {}
    for name, service in snapshot.services.items():
        window_figures = stats.get(name)
        is_up = None if service.status not in STATUS_VALUE else int(service.status != UNHEALTHY)
        tags = (f"service:{name}", f"critical:{str(service.critical).lower()}")
        up.add_metric([name, str(service.critical).lower()], math.nan if is_up is None else is_up)
        if is_up is not None:
            points.append(DatadogPoint("health.dependency.up", is_up, tags=tags))
        seconds = None if service.response_time_ms is None else service.response_time_ms / 1000.0
        response.add_metric([name], math.nan if seconds is None else seconds)
        if service.response_time_ms is not None:
            points.append(DatadogPoint("health.dependency.response_time.latest", _ms(service.response_time_ms) or 0.0,
                                       tags=tags))
        # The window's mean, as documented (a rule on it over 1m resolves as the slow checks leave
        # the window, not at the first fast one); the latest check is .latest above.
        mean = window_figures.mean_response_ms if window_figures else None
        if mean is not None:
            points.append(DatadogPoint("health.dependency.response_time", _ms(mean) or 0.0, tags=tags))
        ratio = window_figures.availability if window_figures else None
        availability.add_metric([name], math.nan if ratio is None else ratio)
        if ratio is not None:
            points.append(DatadogPoint("health.dependency.availability", ratio, tags=tags))
        if service.circuit is not None:
            is_open = int(service.circuit.state != "closed")
            breaker_open.add_metric([name], is_open)
            points.append(DatadogPoint("health.circuit.open", is_open, tags=tags))
        services_json[name] = {
            **render_service(service, snapshot.taken_at),
            "weight": weight(service.critical),
            "window": None
            if window_figures is None
            else {
                "checks": window_figures.checks,
                "healthy": window_figures.healthy,
                "degraded": window_figures.degraded,
                "unhealthy": window_figures.unhealthy,
                "availability": None if ratio is None else round(ratio, 6),
                "meanResponseTime": _ms(window_figures.mean_response_ms),
            },
        }
    health_score.add_metric([], math.nan if score is None else score)
    if score is not None:
        points.append(DatadogPoint("health.score", score))
    return CategoryReport(
        json={
            "window": window.label,
            "status": snapshot.status,
            "health_score": score,
            "checkedAt": isoformat(snapshot.checked_at),
            "services": services_json,
        },
        prometheus=[health_score, up, response, availability, breaker_open],
        datadog=points,
    )
