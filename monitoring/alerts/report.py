"""The ``alerts`` metric category: open alerts by state and severity, alerts fired and resolved
in the window, muted and acknowledged ones, and the notification delivery figures (so that a
notification given up on is a metric, not only a row in the deliveries listing)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, func, select

from monitoring.alerts.lifecycle import FIRING, OPEN_STATES, PENDING
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.notify.model import SEVERITIES
from monitoring.store.alerts_tables import alerts
from monitoring.store.database import Store


class AlertsProvider:
    """``monitoring.metric_categories["alerts"]``."""

    def __init__(self, store: Store, deliveries: Callable[[TimeWindow], CategoryReport]) -> None:
        self.store = store
        self.deliveries = deliveries

    def __call__(self, window: TimeWindow) -> CategoryReport:
        from prometheus_client.metrics_core import GaugeMetricFamily

        t = alerts
        with self.store.read() as conn:
            open_counts = conn.execute(
                select(t.c.state, t.c.severity, func.count()).where(t.c.state.in_(OPEN_STATES))
                .group_by(t.c.state, t.c.severity)
            ).all()
            muted = conn.execute(select(func.count()).where(t.c.state == FIRING, t.c.muted != "")).scalar_one()
            acknowledged = conn.execute(
                select(func.count()).where(t.c.state == FIRING, t.c.acknowledged_at.is_not(None))
            ).scalar_one()
            fired = conn.execute(
                select(func.count()).where(and_(t.c.fired_at >= window.start, t.c.fired_at < window.end))
            ).scalar_one()
            resolved = conn.execute(
                select(func.count()).where(and_(t.c.resolved_at >= window.start, t.c.resolved_at < window.end))
            ).scalar_one()
        by_state: dict[str, dict[str, int]] = {state: dict.fromkeys(SEVERITIES, 0) for state in (PENDING, FIRING)}
        for state, severity, count in open_counts:
            by_state[state][severity] = int(count)
        summary: dict[str, Any] = {
            "firing": sum(by_state[FIRING].values()),
            "pending": sum(by_state[PENDING].values()),
            "firingBySeverity": by_state[FIRING],
            "pendingBySeverity": by_state[PENDING],
            "muted": int(muted),
            "acknowledged": int(acknowledged),
            "firedInWindow": int(fired),
            "resolvedInWindow": int(resolved),
        }
        active = GaugeMetricFamily("centinela_alerts", "Open alerts by state and severity.", labels=["state", "severity"])
        points: list[DatadogPoint] = []
        for state, severities in by_state.items():
            for severity, count in severities.items():
                active.add_metric([state, severity], count)
                points.append(DatadogPoint("alerts.active", float(count), tags=(f"state:{state}", f"severity:{severity}")))
        muted_metric = GaugeMetricFamily("centinela_alerts_muted", "Firing alerts not sent: silenced, in "
                                         "maintenance or inhibited.")
        muted_metric.add_metric([], summary["muted"])
        acked_metric = GaugeMetricFamily("centinela_alerts_acknowledged", "Firing alerts acknowledged.")
        acked_metric.add_metric([], summary["acknowledged"])
        interval = max(1, int(round(window.seconds)))
        points += [
            DatadogPoint("alerts.muted", float(summary["muted"])),
            DatadogPoint("alerts.acknowledged", float(summary["acknowledged"])),
            DatadogPoint("alerts.fired", float(summary["firedInWindow"]), "count", interval=interval),
            DatadogPoint("alerts.resolved", float(summary["resolvedInWindow"]), "count", interval=interval),
        ]
        delivery = self.deliveries(window)
        return CategoryReport(
            json={"alerts": summary, **delivery.json},
            prometheus=[active, muted_metric, acked_metric, *delivery.prometheus],
            datadog=points + delivery.datadog,
        )


# What a firing alert of each severity says about the service, next to the health status.
ALERT_STATUS = {"critical": "unhealthy", "high": "unhealthy", "medium": "degraded", "low": "degraded"}
_STATUS_RANK = {"healthy": 0, "unknown": 1, "degraded": 2, "unhealthy": 3}


def with_firing_alert(status: dict[str, Any], active: list[dict[str, Any]]) -> dict[str, Any]:
    """The dashboard banner's status, plus ``alert`` (the most severe firing, unmuted alert) when
    that alert is worse than the health status: a green "Healthy" must not hide a critical page."""
    firing = [a for a in active if a.get("state") == FIRING and not a.get("muted")]
    if not firing:
        return status
    worst = min(firing, key=lambda a: SEVERITIES.index(a["severity"]) if a.get("severity") in SEVERITIES else 99)
    shown = ALERT_STATUS.get(worst.get("severity", ""))
    if shown is None or _STATUS_RANK[shown] <= _STATUS_RANK.get(status.get("status", "unknown"), 1):
        return status
    return {**status, "alert": {
        "status": shown,
        "word": f"{str(worst['severity']).capitalize()} alert firing",
        "severity": worst["severity"],
        "name": worst.get("name"),
        "summary": worst.get("summary"),
        "firedAt": worst.get("firedAt"),
        "firing": len(firing),
    }}
