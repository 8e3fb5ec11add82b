"""Centinela's URL space: every blueprint and its routes, declared without importing a view.

A view module (its pydantic models, pydantic itself, the domain code it adapts) is imported on
the first request to one of its routes (``LazyView``), so a host app's worker that serves only
the host's pages and the load balancer's probes does not pay for Centinela's other endpoints
(about 19 MB of RSS once all are used, with the OpenAPI document's spectree: docs/api.md).
The routes are declared here, beside the view's name; the contract of each (key, models,
documented answers) stays with the view, in its ``@endpoint``.
A test checks that every name here is a view of its module, and every view has a route.

The ingest modules (OTLP, the Sentry protocol) keep their blueprint in their module, with the
protocol's own error answers: they are served by the Centinela service, which loads them at start.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint

from monitoring.api.blueprint import BY_ADDRESS, IdentityFunc, LazyView, api_key_or_address, centinela_blueprint, client_address

PROBES = "monitoring.api.probes"
DASHBOARD_FOLDER = Path(__file__).resolve().parent.parent / "dashboard"


@dataclass(frozen=True)
class Route:
    """``method rule`` served by the view function ``view`` (also its endpoint name), of the
    blueprint's module unless ``module`` names another."""

    method: str
    rule: str
    view: str
    module: str | None = None


@dataclass(frozen=True)
class LazyBlueprint:
    """A ``centinela_blueprint`` whose views live in ``module``, imported on first use."""

    name: str
    module: str
    url_prefix: str
    routes: tuple[Route, ...]
    budgets: tuple[tuple[str, IdentityFunc], ...] = (BY_ADDRESS,)
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Blueprint:
        """A new Blueprint (one per app: its views' import is shared, through the module)."""
        bp = centinela_blueprint(self.name, self.module, self.url_prefix, budgets=self.budgets, **self.options)
        for route in self.routes:
            view = LazyView(route.module or self.module, route.view)
            bp.add_url_rule(route.rule, route.view, view, methods=[route.method])
        return bp


def _get(rule: str, view: str, module: str | None = None) -> Route:
    return Route("GET", rule, view, module)


def _post(rule: str, view: str) -> Route:
    return Route("POST", rule, view)


LAZY_BLUEPRINTS: Mapping[str, LazyBlueprint] = {spec.module: spec for spec in (
    # Load balancers poll these: a budget of their own (RATELIMIT_HEALTH), instead of the default.
    # Every worker answers the probes: their views are in a module without pydantic.
    LazyBlueprint("centinela_health", "monitoring.api.health", "/api/health",
                  (_get("/live", "live", PROBES), _get("/check", "check"), _get("/ready", "ready", PROBES)),
                  budgets=(("health", client_address),)),
    LazyBlueprint("centinela_uptime", "monitoring.api.uptime", "/api/monitoring",
                  (_get("/uptime", "uptime"), _get("/uptime/incidents", "incident_history"))),
    # The export's own budget (RATELIMIT_EXPORT) per key, for the scrapers that poll it; the
    # default per-address limit applies on top, as on every endpoint.
    LazyBlueprint("centinela_metrics", "monitoring.api.metrics", "/api/monitoring", (_get("/metrics", "metrics"),),
                  budgets=(BY_ADDRESS, ("export", api_key_or_address))),
    LazyBlueprint("centinela_audit", "monitoring.api.audit", "/api/monitoring", (_get("/audit", "audit"),)),
    LazyBlueprint("centinela_alerts", "monitoring.api.alerts", "/api/monitoring",
                  (_get("/alerts", "alerts_get"), _post("/alerts", "alerts_post"))),
    # Events are counted per key (RATELIMIT_EVENTS): one shop's workers share a key, whatever
    # addresses they use.
    LazyBlueprint("centinela_events", "monitoring.api.events", "/api/monitoring", (_post("/events", "post_events"),),
                  budgets=(("events", api_key_or_address),)),
    LazyBlueprint("centinela_errors", "monitoring.api.error_tracking", "/api/monitoring", (_get("/errors", "errors"),)),
    LazyBlueprint("centinela_dashboard", "monitoring.api.dashboard", "/api/monitoring", (
        _get("/dashboard", "dashboard"), _get("/dashboard/data", "dashboard_data"),
        _get("/dashboard/login", "login_page"), _post("/dashboard/login", "login"),
        _post("/dashboard/logout", "logout"),
    ), options={"static_folder": str(DASHBOARD_FOLDER / "static"), "static_url_path": "/dashboard/static",
                "template_folder": str(DASHBOARD_FOLDER / "templates")}),
    LazyBlueprint("centinela_openapi", "monitoring.api.openapi", "/api", (_get("/openapi.json", "openapi_document"),)),
)}


def blueprint_of(module: str) -> Blueprint:
    """The blueprint serving ``module``'s routes: built here for a lazy one, the module's ``bp``
    (imported now) for an ingest module."""
    spec = LAZY_BLUEPRINTS.get(module)
    if spec is not None:
        return spec.build()
    blueprint: Blueprint = importlib.import_module(module).bp
    return blueprint
