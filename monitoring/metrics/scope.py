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
