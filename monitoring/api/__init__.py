"""HTTP adapters: one blueprint module per endpoint family, each thin over the domain modules.

Every module listed here has ``bp`` (its blueprint), ``OPENAPI_PATHS`` (its part of the
OpenAPI document) and optionally ``install(monitoring, app)`` for its jobs and limits.
"""
API_MODULES = [
    "monitoring.api.health",
    "monitoring.api.uptime",
    "monitoring.api.metrics",
    "monitoring.api.audit",
    "monitoring.api.alerts",
    "monitoring.api.events",
    "monitoring.api.error_tracking",
    "monitoring.api.dashboard",
    "monitoring.api.openapi",
]
