"""The dashboard document: everything an operator looks at, in one JSON answer.

It is assembled, never recomputed: health from the ``health`` category provider, uptime and
incidents from the uptime service's own report, request figures from the rollups (the
``performance`` category's JSON and per-bucket series of ``monitoring.dashboard.series``),
errors and business figures from their category providers, active alerts from the alerting
engine. A section whose feature is missing or failed says so (``{"available": false,
"reason"}``) and the rest of the document still answers.

Every figure is read from the store on every refresh, at one moment (``now``, read once per
answer and handed to every section), so any worker answers the same and a duration never goes
back between two refreshes. The one thing a process keeps between refreshes is the series
buckets it has already computed (``BucketMemo``), and it reuses one only while the store still
holds exactly the requests it was computed from (see monitoring.dashboard.series): a cache of
the store, never a second source.

Two views. ``full`` is for a caller with the metrics key (or the page's signed session): every
section. ``public`` is what the HTML page shows to anyone: health and uptime only; the other
sections are not in the document at all (not merely hidden by the page), and ``restricted``
names them.

Services. The full view reads one service (``service``) or every service combined (None,
the default); ``appServices`` lists the services the store knows (requests or errors) and
which is selected, so the page offers a picker when there is more than one. The public view
has no per-service figures and no list.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitoring.alerts.report import with_firing_alert
from monitoring.clock import Clock, isoformat
from monitoring.dashboard.series import SERIES, BucketMemo, payment_series, request_series, series_json
from monitoring.durations import DAY, HOUR
from monitoring.errors.tracking import error_services
from monitoring.metrics.categories import CategoryProvider, CategoryReport, TimeWindow
from monitoring.metrics.exporters import Unavailable
from monitoring.metrics.performance import performance_json
from monitoring.metrics.rollups import RequestRollups
from monitoring.metrics.scope import INCLUDE_INTERNAL, ScopedProvider
from monitoring.notify.model import SEVERITIES
from monitoring.store.database import Store, is_store_unavailable

log = logging.getLogger(__name__)

PUBLIC = "public"
FULL = "full"
VIEWS = (PUBLIC, FULL)
DEFAULT_REFRESH_SECONDS = 5
TOP_ROUTES = 10
RESTRICTED_SECTIONS = ("performance", "series", "errors", "business", "alerts")

STATUS_WORDS = {"healthy": "Healthy", "degraded": "Degraded", "unhealthy": "Unhealthy", "unknown": "Unknown"}

UptimeSource = Callable[[float], dict[str, Any]]  # the uptime document at ``now`` (GET /api/monitoring/uptime's shape)
AlertsSource = Callable[[], list[dict[str, Any]]]  # the alerting engine's open alerts, as its API shows them
MAX_ALERTS = 100


@dataclass(frozen=True)
class DashboardSources:
    """Where the figures come from; every one is another feature's public interface."""

    store: Store
    clock: Clock
    categories: Mapping[str, CategoryProvider]
    rollups: RequestRollups
    uptime: UptimeSource | None = None
    alerts: AlertsSource | None = None
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS


def _unavailable(reason: str) -> dict[str, Any]:
    return Unavailable(reason).to_json()


def _section(name: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One section, or why it is missing: one failing feature must not blank the whole dashboard."""
    try:
        return build()
    except Exception as error:
        if is_store_unavailable(error):
            raise  # no section can be built: the request answers 503 store_unavailable
        log.exception("dashboard section %s failed", name)
        return _unavailable(f"the {name} figures could not be computed; the details are in the server log")


def _category(sources: DashboardSources, name: str, window: TimeWindow, service: str | None = None) -> dict[str, Any]:
    provider = sources.categories.get(name)
    if provider is None:
        raise LookupError(name)
    if service is not None and isinstance(provider, ScopedProvider):
        report = provider.report(window, INCLUDE_INTERNAL, service)
    else:
        report = provider(window)
    if not isinstance(report, CategoryReport):
        raise TypeError(f"the {name} provider returned {type(report).__name__}, not a CategoryReport")
    return report.json


def trailing(now: float, seconds: float, label: str) -> TimeWindow:
    return TimeWindow(now - seconds, now, label)


def today_utc(now: float) -> TimeWindow:
    """Since midnight UTC: the window of "revenue today"."""
    return TimeWindow(math.floor(now / DAY) * DAY, now, "today")


def _window_json(window: TimeWindow) -> dict[str, Any]:
    return {"label": window.label, "from": isoformat(window.start), "to": isoformat(window.end)}


# --- public sections -------------------------------------------------------------------------


def _health(sources: DashboardSources, now: float) -> dict[str, Any]:
    if "health" not in sources.categories:
        return _unavailable("no health figures in this service: the health checks are not installed")
    return _category(sources, "health", trailing(now, DAY, "24h"))


def status_summary(health: dict[str, Any]) -> str:
    """One sentence on the dependencies, in words (the page never says it by colour alone)."""
    services = health.get("services") or {}
    if not services:
        return "No dependency is checked yet."
    problems = []
    for name, service in services.items():
        status = service.get("status")
        if status in ("unhealthy", "degraded"):
            error = service.get("error")
            problems.append(f"{name} is {status}" + (f" ({error})" if error else ""))
        elif status == "unknown":
            problems.append(f"{name} is not checked yet")
    if not problems:
        if len(services) == 1:
            return f"{next(iter(services))} is healthy."
        return f"All {len(services)} dependencies are healthy."
    return "; ".join(problems) + "."


def status_section(health: dict[str, Any]) -> dict[str, Any]:
    if health.get("available") is False:
        return {"status": "unknown", "word": STATUS_WORDS["unknown"], "health_score": None, "checkedAt": None,
                "summary": health["reason"]}
    status = health.get("status", "unknown")
    return {
        "status": status,
        "word": STATUS_WORDS.get(status, status.title()),
        "health_score": health.get("health_score"),
        "checkedAt": health.get("checkedAt"),
        "summary": status_summary(health),
    }


def services_section(health: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per dependency, its breaker and its availability over the last 24 h of checks."""
    rows = []
    for name, service in (health.get("services") or {}).items():
        window = service.get("window") or {}
        rows.append(
            {
                "name": name,
                "status": service.get("status"),
                "critical": service.get("critical"),
                "responseTime": service.get("responseTime"),
                "checkedAt": service.get("checkedAt"),
                "error": service.get("error"),
                "circuit": service.get("circuit"),
                "availability24h": window.get("availability"),
                "checks24h": window.get("checks", 0),  # what availability24h rests on
            }
        )
    return rows


def uptime_sections(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The uptime report cut to what the dashboard shows: (uptime and error budget, incidents)."""
    uptime = dict(document["uptime"])
    uptime.pop("definition", None)
    sla = document["sla"]
    budget = {k: v for k, v in sla["errorBudget"].items() if k != "definition"}
    error_rate = {k: v for k, v in sla["errorRate"].items() if k in ("share", "threshold")}
    burn_rates = sla.get("burnRates", {})
    windows = burn_rates.get("windows", {})
    # Each firing alert with the rates its windows burn at now: the page says how fast, not only the threshold.
    firing = [{**alert, "longRate": windows.get(alert["longWindow"]), "shortRate": windows.get(alert["shortWindow"])}
              for alert in burn_rates.get("alerts", []) if alert.get("firing")]
    coverage = document.get("coverage") or {}
    section = {
        "window": document["window"],
        "status": document.get("status"),
        "uptime": uptime,
        "sla": {
            "target": sla["target"],
            "coverage": sla.get("coverage"),
            "compliance": sla["compliance"],
            "errorBudget": budget,
            "errorRate": error_rate,
            "burnRateAlertsFiring": firing,
        },
        "zones": document.get("zones", []),
        "maintenance": (document.get("maintenance") or {}).get("active", []),
        "coverage": {k: v for k, v in coverage.items()
                     if k in ("known", "unknown", "knownSeconds", "enough", "minimum", "summary")},
    }
    incidents = dict(document["incidents"])
    return section, incidents


# --- sections for the metrics key ------------------------------------------------------------


def performance_section(sources: DashboardSources, now: float, service: str | None = None) -> dict[str, Any]:
    """The last hour's request figures (the ``performance`` category's JSON), top routes only."""
    window = trailing(now, HOUR, "1h")
    figures = performance_json(sources.rollups.figures(window, service=service))
    figures["routes"] = figures["routes"][:TOP_ROUTES]
    return {"window": _window_json(window), **figures}


def series_section(sources: DashboardSources, now: float, memo: BucketMemo | None = None,
                   service: str | None = None) -> dict[str, Any]:
    """Latency percentiles, throughput, error share and payments per bucket: last hour and last 24 h."""
    charts = {}
    for spec in SERIES:
        payments = payment_series(sources.store, spec, now) if "business" in sources.categories else None
        requests = request_series(sources.rollups, spec, now, memo, service)
        charts[spec.label] = series_json(spec, now, requests, payments)
    return charts


def _category_section(sources: DashboardSources, name: str, window: TimeWindow,
                      service: str | None = None) -> dict[str, Any]:
    if name not in sources.categories:
        return _unavailable(f"no {name} figures in this service: their provider is not installed")
    return {"window": _window_json(window), **_category(sources, name, window, service)}


def app_services_section(sources: DashboardSources, service: str | None) -> dict[str, Any]:
    """The services the store knows (requests or errors), and the one selected (None: all combined)."""
    known = set(sources.rollups.services())
    if "errors" in sources.categories:
        known.update(error_services(sources.store))
    return {"selected": service, "known": sorted(known)}


def alerts_section(sources: DashboardSources, now: float) -> dict[str, Any]:
    """Open alerts, most severe first, and their counts (the ``alerts`` category's summary)."""
    if sources.alerts is None:
        return _unavailable("no alerting engine in this service: active alerts cannot be listed")
    rank: dict[str | None, int] = {severity: i for i, severity in enumerate(SEVERITIES)}  # None: no severity, last
    active = sorted(sources.alerts(), key=lambda a: (a.get("state") != "firing", rank.get(a.get("severity"), 99)))
    section: dict[str, Any] = {"active": active}
    if "alerts" in sources.categories:
        summary = _category(sources, "alerts", trailing(now, DAY, "24h")).get("alerts") or {}
        section["counts"] = {key: summary.get(key) for key in ("firing", "pending", "firingBySeverity", "muted",
                                                               "acknowledged")}
    return section


# --- the document ----------------------------------------------------------------------------


def build_dashboard(sources: DashboardSources, view: str, buckets: BucketMemo | None = None,
                    service: str | None = None) -> dict[str, Any]:
    """The dashboard document for ``view`` (``full`` or ``public``); pass the app's ``buckets`` between refreshes.

    ``service``: the full view's request and error figures of one service (None: every service).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}")
    now = sources.clock.now()  # the one moment every section of this answer is read at
    health = _section("health", lambda: _health(sources, now))
    document: dict[str, Any] = {
        "generatedAt": isoformat(now),
        "view": view,
        "refreshSeconds": sources.refresh_seconds,
        "status": status_section(health),
        "services": services_section(health) if health.get("available") is not False else [],
    }
    if sources.uptime is None:
        reason = "no uptime figures in this service: the uptime feature is not installed"
        document["uptime"], document["incidents"] = _unavailable(reason), _unavailable(reason)
    else:
        try:
            document["uptime"], document["incidents"] = uptime_sections(sources.uptime(now))
        except Exception as error:
            if is_store_unavailable(error):
                raise
            log.exception("dashboard section uptime failed")
            reason = "the uptime figures could not be computed; the details are in the server log"
            document["uptime"], document["incidents"] = _unavailable(reason), _unavailable(reason)
    if view == PUBLIC:
        document["restricted"] = list(RESTRICTED_SECTIONS)
        return document
    document["appServices"] = _section("services", lambda: app_services_section(sources, service))
    document["performance"] = _section("performance", lambda: performance_section(sources, now, service))
    document["series"] = _section("series", lambda: series_section(sources, now, buckets, service))
    document["errors"] = _section("errors", lambda: _category_section(sources, "errors", trailing(now, DAY, "24h"),
                                                                      service))
    document["business"] = _section("business", lambda: _category_section(sources, "business", today_utc(now)))
    document["alerts"] = _section("alerts", lambda: alerts_section(sources, now))
    if document["alerts"].get("active"):  # the banner names a firing alert worse than the health status
        document["status"] = with_firing_alert(document["status"], document["alerts"]["active"])
    return document


def sources_of(
    store: Store,
    clock: Clock,
    categories: Mapping[str, CategoryProvider],
    rollups: RequestRollups,
    uptime_service: Any | None,
    engine: Any | None,
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS,
) -> DashboardSources:
    """The dashboard's sources from the features the composition root built."""
    uptime: UptimeSource | None = None
    if uptime_service is not None:
        from monitoring.uptime.periods import parse_period
        from monitoring.uptime.report import render_uptime

        def uptime(now: float) -> dict[str, Any]:
            # The same document as GET /api/monitoring/uptime (its default window), cut down above.
            return render_uptime(uptime_service.report(parse_period(None, None, now), now))

    alerts: AlertsSource | None = None
    if engine is not None:
        from monitoring.alerts.lifecycle import OPEN_STATES

        def alerts() -> list[dict[str, Any]]:
            # The same rows and shape as GET /api/monitoring/alerts?action=active.
            rules = {rule.name: rule for rule in engine.rulebook.rules()}
            return [engine.alert_json(alert, rules)
                    for alert in engine.ledger.listing(states=OPEN_STATES, limit=MAX_ALERTS)]

    return DashboardSources(
        store=store,
        clock=clock,
        categories=categories,
        rollups=rollups,
        uptime=uptime,
        alerts=alerts,
        refresh_seconds=refresh_seconds,
    )

