"""The Datadog dashboard JSON (``GET /api/monitoring/dashboard?platform=datadog``).

A body for Datadog's ``POST /api/v1/dashboard`` (or Dashboards > New > Import JSON) over the
metric names our Datadog export sends (``format=datadog``: the system description's dotted
names, such as ``api.response_time.p95`` in ms). The tests load it into the datadog-api-client
models and check every queried name against a real ``format=datadog`` body.

Plain dicts: Datadog publishes no dashboard builder for Python beyond the API client's
models, and the models add nothing the test does not already check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TITLE = "Centinela"

# Gauges the Datadog export sends only once there is a figure: Datadog's intake takes no NaN, and a
# 0 would be a false reading (a health score of 0, 0 % uptime, every payment failed) that monitors
# would act on. Until then these widgets show Datadog's "No data", which is true. Every other name
# queried here (counts, gauges of known state) is sent from the first scrape, zero-valued.
MEASURED_ONLY = frozenset({
    "health.score",  # before the first health round
    "health.dependency.up", "health.dependency.response_time",  # before a dependency's first check
    "uptime.percentage",  # before a round vouches for any time
    "api.response_time.p50", "api.response_time.p95", "api.response_time.p99",  # no request in the window
    "payments.success_rate",  # no payment in the window
    "system.memory.usage", "system.cpu.usage",  # before a process's first resource sample
})


@dataclass(frozen=True)
class Widget:
    title: str
    kind: Literal["query_value", "timeseries"]
    queries: tuple[str, ...]
    precision: int = 2


# Every name here is one the Datadog export sends; tags are the ones it sets.
WIDGETS: tuple[Widget, ...] = (
    Widget("Health score", "query_value", ("avg:health.score{*}",), 0),
    Widget("Uptime %", "query_value", ("avg:uptime.percentage{*}",), 3),
    Widget("Error budget left %", "query_value", ("avg:error_budget.remaining{*}",), 1),
    Widget("Open incidents", "query_value", ("max:incidents.open{*}",), 0),
    Widget("Latency p50 / p95 / p99 (ms)", "timeseries",
           ("avg:api.response_time.p50{*}", "avg:api.response_time.p95{*}", "avg:api.response_time.p99{*}")),
    Widget("Requests per second", "timeseries", ("avg:requests.per_second{*}",)),
    Widget("5xx share", "timeseries", ("avg:errors.share{*}",)),
    Widget("Unhandled exceptions per minute", "timeseries", ("avg:errors.unhandled.rate{*}",)),
    Widget("Dependency up", "timeseries", ("avg:health.dependency.up{*} by {service}",)),
    Widget("Health-check response time (ms)", "timeseries", ("avg:health.dependency.response_time{*} by {service}",)),
    Widget("Payment success %", "query_value", ("avg:payments.success_rate{*}",), 2),
    Widget("Payments", "timeseries", ("sum:payments.count{*} by {outcome}",)),
    Widget("Revenue (minor units)", "timeseries", ("sum:payments.revenue_minor_units{*} by {currency}",)),
    Widget("Active users", "timeseries", ("avg:users.active{*} by {window}",)),
    Widget("Ticket operations", "timeseries", ("sum:tickets.operations{*} by {operation}",)),
    Widget("Memory use %", "timeseries", ("avg:system.memory.usage{*}",)),
    Widget("CPU %", "timeseries", ("avg:system.cpu.usage{*}",)),
)


def _definition(widget: Widget) -> dict[str, Any]:
    if widget.kind == "query_value":
        (query,) = widget.queries
        return {
            "type": "query_value",
            "title": widget.title,
            "requests": [{"q": query, "aggregator": "last"}],
            "autoscale": True,
            "precision": widget.precision,
        }
    return {
        "type": "timeseries",
        "title": widget.title,
        "show_legend": True,
        "requests": [{"q": query, "display_type": "line"} for query in widget.queries],
    }


def datadog_dashboard() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict."""
    return {
        "title": TITLE,
        "description": "Health, uptime, requests, business figures and resources from Centinela's Datadog export.",
        "layout_type": "ordered",
        "widgets": [{"definition": _definition(widget)} for widget in WIDGETS],
    }


def metric_queries(document: dict[str, Any]) -> list[str]:
    """Every metric query in a Datadog dashboard document."""
    return [request["q"] for widget in document.get("widgets", []) for request in widget["definition"]["requests"]]
