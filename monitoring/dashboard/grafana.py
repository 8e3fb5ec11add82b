"""The Grafana dashboard document (``GET /api/monitoring/dashboard?platform=grafana``).

Built with grafana-foundation-sdk (Grafana's own typed builders, generated from the schema
Grafana validates dashboards against), so the document has every field Grafana expects
(``schemaVersion``, ``fieldConfig``, ``gridPos`` laid out on the 24-column grid) without
hand-written dicts drifting from the schema.

Every query is PromQL over the names our Prometheus export serves (see
monitoring/metrics/performance.py and the other category providers): counters with their
``_total`` suffix, the latency histogram through its ``_bucket`` series and
``histogram_quantile``, gauges as they are. The tests check each name against a real
exposition, so a renamed metric cannot leave a silently empty panel.

The Prometheus data source is a dashboard variable (``DS_PROMETHEUS``, type ``datasource``):
the document imports as it is and uses whichever Prometheus the viewer picks.

Every family queried here is in the export from the first scrape of a fresh service: counters
at 0, figures not measured yet as NaN (see the category providers). Each panel maps NaN (and no
value at all) to the words "not measured yet", so day one reads as such and not as "No data".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardSpecialValueMapOptions,
    DataSourceRef,
    GridPos,
    SpecialValueMap,
    SpecialValueMatch,
    ValueMappingResult,
)

UID = "centinela-overview"
TITLE = "Centinela"
DATASOURCE_VARIABLE = "DS_PROMETHEUS"
REFRESH = "30s"
RATE_RANGE = "5m"
# Requests to the monitoring endpoints themselves are left out, as in every SLO figure.
APP = 'internal="false"'

_DATASOURCE = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
NOT_MEASURED = "not measured yet"
_NOT_MEASURED_MAPPING = SpecialValueMap(options=DashboardSpecialValueMapOptions(
    match=SpecialValueMatch.NULL_AND_NAN, result=ValueMappingResult(text=NOT_MEASURED)))


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    kind: Literal["stat", "timeseries"]
    queries: tuple[Query, ...]
    unit: str
    description: str
    width: int = 8
    height: int = 8


def _latency(quantile: float) -> Query:
    expr = (
        f"histogram_quantile({quantile}, sum by (le) "
        f"(rate(centinela_http_request_duration_seconds_bucket{{{APP}}}[{RATE_RANGE}])))"
    )
    return Query(expr, f"p{round(quantile * 100)}")


_REQUESTS = f"centinela_http_requests_total{{{APP}}}"
_ERRORS_5XX = f'centinela_http_requests_total{{{APP},status="5xx"}}'

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Overview",
        (
            Panel("Health score", "stat", (Query("centinela_health_score", "score"),), "none",
                  "Weighted health of the dependencies, 0-100 (critical ones weigh 3).", 6, 5),
            Panel("Uptime", "stat", (Query("centinela_uptime_ratio", "{{window}}"),), "percentunit",
                  "Up share of the known time outside maintenance, over the scrape's window.", 6, 5),
            Panel("Error budget left", "stat", (Query("centinela_error_budget_remaining_ratio", "{{window}}"),),
                  "percentunit", "Share of the error budget left (below 0 when overspent).", 6, 5),
            Panel("Open incidents", "stat", (Query("centinela_incidents_open", "open"),), "none",
                  "1 while an incident is open.", 6, 5),
        ),
    ),
    (
        "Requests",
        (
            Panel("Latency p50 / p95 / p99", "timeseries", (_latency(0.5), _latency(0.95), _latency(0.99)), "s",
                  "Quantiles of the merged latency histogram of every worker and host.", 12),
            Panel("Throughput", "timeseries",
                  (Query(f"sum(rate({_REQUESTS}[{RATE_RANGE}]))", "requests/s"),), "reqps",
                  "Requests per second handled by the monitored app.", 12),
            Panel("Error rate (5xx share)", "timeseries",
                  (Query(f"(sum(rate({_ERRORS_5XX}[{RATE_RANGE}])) or vector(0)) / "
                         f"sum(rate({_REQUESTS}[{RATE_RANGE}]))", "5xx share"),),
                  "percentunit", "5xx responses over all responses.", 12),
            Panel("Unhandled exceptions per minute", "timeseries",
                  (Query(f"sum(rate(centinela_errors_total[{RATE_RANGE}])) * 60", "exceptions/min"),), "none",
                  "Exceptions captured by error tracking.", 12),
        ),
    ),
    (
        "Dependencies",
        (
            Panel("Dependency up", "timeseries", (Query("centinela_dependency_up", "{{service}}"),), "none",
                  "1 when the dependency answers (healthy or degraded), 0 when it is down."),
            Panel("Health-check response time", "timeseries",
                  (Query("centinela_dependency_response_seconds", "{{service}}"),), "s",
                  "Latest health-check response time of each dependency."),
            Panel("Circuit breakers open", "timeseries",
                  (Query("centinela_circuit_breaker_open", "{{service}}"),), "none",
                  "1 while a dependency's breaker is open or half-open."),
        ),
    ),
    (
        "Business",
        (
            Panel("Payments per minute", "timeseries",
                  (Query(f"sum by (outcome) (rate(centinela_payments_total[{RATE_RANGE}])) * 60", "{{outcome}}"),),
                  "none", "Payments recorded, by outcome."),
            Panel("Payment success", "stat", (Query("centinela_payment_success_ratio", "{{window}}"),),
                  "percentunit", "Share of payments that succeeded over the scrape's window."),
            Panel("Revenue in the last 24 h (minor units)", "stat",
                  (Query("sum by (currency) (increase(centinela_revenue_minor_units_total[24h]))", "{{currency}}"),),
                  "none", "Succeeded payments, in minor units of each currency (cents for EUR)."),
            Panel("Active users", "timeseries", (Query("centinela_active_users", "{{window}}"),), "none",
                  "Distinct users active in each trailing window."),
            Panel("Ticket operations per minute", "timeseries",
                  (Query(f"sum by (operation) (rate(centinela_ticket_operations_total[{RATE_RANGE}])) * 60",
                         "{{operation}}"),),
                  "none", "Ticket operations recorded, by operation.", 16),
        ),
    ),
    (
        "System",
        (
            Panel("Memory use", "timeseries", (Query("centinela_system_memory_usage_ratio", "{{host}}"),),
                  "percentunit", "Memory in use over the limit that applies (cgroup or host).", 12),
            Panel("CPU", "timeseries", (Query("centinela_system_cpu_usage_ratio", "{{host}}"),), "percentunit",
                  "Host CPU busy share over all CPUs.", 12),
        ),
    ),
)


def _panel(spec: Panel, panel_id: int) -> Any:
    builder = stat.Panel() if spec.kind == "stat" else timeseries.Panel()
    builder = (
        builder.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(_DATASOURCE)
        .unit(spec.unit)
        .no_value(NOT_MEASURED)
        .mappings([_NOT_MEASURED_MAPPING])
        .grid_pos(GridPos(h=spec.height, w=spec.width, x=0, y=0))
    )
    for index, query in enumerate(spec.queries):
        builder = builder.with_target(
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + index))
            .datasource(_DATASOURCE)
        )
    return builder


def grafana_dashboard() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict (Grafana's import takes it as it is)."""
    builder = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description("Health, uptime, requests, business figures and resources from Centinela's Prometheus export.")
        .tags(["centinela", "monitoring"])
        .refresh(REFRESH)
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(dashboard.DatasourceVariable(DATASOURCE_VARIABLE).label("Prometheus").type("prometheus"))
    )
    panel_id = 1
    for title, panels in ROWS:
        builder = builder.with_row(dashboard.Row(title).id(panel_id))
        panel_id += 1
        for spec in panels:
            builder = builder.with_panel(_panel(spec, panel_id))
            panel_id += 1
    document: dict[str, Any] = json.loads(JSONEncoder(sort_keys=False).encode(builder.build()))
    document["id"] = None  # a new dashboard on import; Grafana assigns the id
    return document


def promql_expressions(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard document (for the tests and for reviewers)."""
    return [target["expr"] for panel in document.get("panels", []) for target in panel.get("targets", [])
            if "expr" in target]
