"""Which requests count: one definition for every figure that counts requests.

Counted: the monitored app's requests, whatever their status (404s of unknown paths too, under
one ``<unmatched>`` route). Not counted: requests to Centinela's own endpoints
(``/api/monitoring/*``, ``/api/health/*``, ``/api/openapi.json``), which the middleware records
with ``internal=True``. A dashboard refreshing every few seconds, a load balancer polling
health and a scraper would otherwise outnumber a quiet shop's customers, inflate its
throughput and dilute its error share.

Every category that reports a request count reads it in this scope: ``performance``
(``requests.count``), ``errors`` (``requests.count`` and ``errors.share``), the uptime
report's error-rate SLI, the dashboard's series and the alert figures. The metrics export's
``include_internal=true`` widens the scope of every such category of that answer at once;
a provider takes part by offering ``report(window, include_internal, service=None)``;
``service`` narrows its figures to one service's requests and errors (None: all services).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from monitoring.metrics.categories import CategoryReport, TimeWindow

INCLUDE_INTERNAL = False  # the default scope: the monitored app's requests only
MAX_SERVICE_CHARS = 100  # monitoring.store.metrics_tables.SERVICE_LENGTH


def is_service_name(name: str) -> bool:
    """A name a service can have: 1 to MAX_SERVICE_CHARS printable characters, no surrounding spaces."""
    return 0 < len(name) <= MAX_SERVICE_CHARS and name.isprintable() and name == name.strip()


def parse_service(raw: str | None) -> str | None:
    """A ``service`` parameter: None (or empty) for every service combined, else the one name.

    ValueError for a name no service can have (too long, control characters); a well-formed
    name the store does not know is simply a service with no figures.
    """
    if raw is None or raw == "":
        return None
    if not is_service_name(raw):
        raise ValueError(f"service must be 1 to {MAX_SERVICE_CHARS} printable characters without surrounding spaces")
    return raw

INTERNAL_NOTE = (
    "requests to the monitoring endpoints (/api/monitoring/*, /api/health/*, /api/openapi.json) are "
    "left out of these figures; add include_internal=true to count them"
)


def scope_name(include_internal: bool) -> str:
    """How an answer names its scope: ``included`` or ``excluded`` (the monitoring endpoints)."""
    return "included" if include_internal else "excluded"


@runtime_checkable
class ScopedProvider(Protocol):
    """A category provider whose figures count requests, and so follow the caller's scope."""

    def report(self, window: TimeWindow, include_internal: bool, service: str | None = None) -> CategoryReport: ...
