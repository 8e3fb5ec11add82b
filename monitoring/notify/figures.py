"""Delivery figures for the metrics export: how many deliveries are in each state (given up
included), how many finished in the window, and how long the oldest undelivered one waits.

The ``alerts`` metric category (the alerting engine's) includes this report, so that a
notification that could not be delivered shows as a metric, not only in the listing.
"""
from __future__ import annotations

from sqlalchemy import func, select

from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.notify.outbox import DELIVERED, FAILED, GAVE_UP, PENDING, SENDING, STATUSES, Outbox
from monitoring.store.notify_tables import notify_deliveries as deliveries


def delivery_report(outbox: Outbox, window: TimeWindow) -> CategoryReport:
    from prometheus_client.metrics_core import GaugeMetricFamily

    by_status = outbox.counts_by_status()
    with outbox.store.read() as conn:
        finished: dict[str, int] = dict(
            conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.finished_at >= window.start, deliveries.c.finished_at < window.end)
                .group_by(deliveries.c.status)
            ).all()
        )
        oldest = conn.execute(
            select(func.min(deliveries.c.created_at)).where(deliveries.c.status.in_((PENDING, SENDING)))
        ).scalar()
    now = outbox.clock.now()
    oldest_age = round(now - oldest, 3) if oldest is not None else None
    in_window = {
        "delivered": int(finished.get(DELIVERED, 0)),
        "failed": int(finished.get(FAILED, 0)),
        "gaveUp": int(finished.get(GAVE_UP, 0)),
    }
    current = GaugeMetricFamily(
        "centinela_notification_deliveries", "Notification deliveries kept in the store, by status.",
        labels=["status"],
    )
    for status in STATUSES:
        current.add_metric([status], by_status[status])
    oldest_metric = GaugeMetricFamily(
        "centinela_notification_oldest_pending_seconds", "Age of the oldest delivery not yet delivered."
    )
    oldest_metric.add_metric([], oldest_age or 0.0)
    datadog = [DatadogPoint("notifications.deliveries", by_status[s], tags=(f"status:{s}",)) for s in STATUSES]
    datadog.append(DatadogPoint("notifications.oldest_pending_seconds", oldest_age or 0.0))
    return CategoryReport(
        json={
            "notifications": {
                "byStatus": by_status,
                "finishedInWindow": in_window,
                "oldestPendingSeconds": oldest_age,
            }
        },
        prometheus=[current, oldest_metric],
        datadog=datadog,
    )
