"""Business figures over a window, from the store, and the ``business`` metric category.

Payments: counts by outcome, ``payments.success_rate`` and the failure rate in %.
Revenue: per currency, the integer sum of succeeded payments' minor units (SQL SUM over
BIGINT: exact; never a float), shown beside a decimal string in the currency's exponent.
Active users: distinct user hashes over the trailing 5m, 1h, 24h and 30d (and the window).
Tickets: operations and tickets (sum of quantities) per operation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, and_, distinct, func, select

from monitoring.business.currencies import format_minor_units
from monitoring.business.events import FAILED, PAYMENT_OUTCOMES, SUCCEEDED, TICKET_OPERATIONS
from monitoring.durations import DAY, HOUR, MINUTE
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.store.business_tables import business_totals, payment_events, ticket_events, user_activity_events
from monitoring.store.database import Store

if TYPE_CHECKING:  # prometheus_client is imported with the first Prometheus family built (an export)
    from prometheus_client.metrics_core import Metric

ACTIVE_USER_WINDOWS: tuple[tuple[str, float], ...] = (
    ("5m", 5 * MINUTE),
    ("1h", HOUR),
    ("24h", DAY),
    ("30d", 30 * DAY),
)


@dataclass(frozen=True)
class PaymentFigures:
    succeeded: int
    failed: int

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        """% of payments that succeeded; None when there were none (not 100, not 0)."""
        return 100.0 * self.succeeded / self.total if self.total else None

    @property
    def failure_rate(self) -> float | None:
        """% of payments that failed; None when there were none."""
        return 100.0 * self.failed / self.total if self.total else None

    @property
    def failure_ratio(self) -> float | None:
        """Failed share (0-1), the unit of PAYMENT_FAILURE_THRESHOLD."""
        return self.failed / self.total if self.total else None


@dataclass(frozen=True)
class Revenue:
    currency: str
    amount_minor: int  # exact integer sum of succeeded payments, in minor units
    payments: int

    @property
    def amount(self) -> str:
        """The sum as a decimal string in the currency's exponent ("1234.56" EUR, "1234" JPY)."""
        return format_minor_units(self.amount_minor, self.currency)


@dataclass(frozen=True)
class TicketOperationFigures:
    operation: str
    operations: int
    tickets: int  # sum of quantities


@dataclass(frozen=True)
class BusinessFigures:
    window: TimeWindow
    payments: PaymentFigures
    revenue: list[Revenue]
    active_users: dict[str, int]  # trailing-window label -> distinct users
    tickets: list[TicketOperationFigures]


def _in(column: Column[float], start: float, end: float) -> Any:
    return and_(column >= start, column < end)


def business_figures(store: Store, window: TimeWindow) -> BusinessFigures:
    """Every business figure over ``window``; active users over the trailing windows ending at its end."""
    p, t, u = payment_events, ticket_events, user_activity_events
    active_windows = dict(ACTIVE_USER_WINDOWS)
    active_windows.setdefault(window.label, window.seconds)
    with store.read() as conn:
        outcomes: dict[str, int] = dict(
            conn.execute(
                select(p.c.outcome, func.count()).where(_in(p.c.at, window.start, window.end)).group_by(p.c.outcome)
            ).all()
        )
        revenue = [
            Revenue(currency, int(amount), int(count))  # PostgreSQL's SUM(bigint) is an exact numeric
            for currency, amount, count in conn.execute(
                select(p.c.currency, func.sum(p.c.amount_minor), func.count())
                .where(_in(p.c.at, window.start, window.end), p.c.outcome == SUCCEEDED)
                .group_by(p.c.currency)
                .order_by(p.c.currency)
            )
        ]
        active_users = {
            label: int(
                conn.execute(
                    select(func.count(distinct(u.c.user_hash))).where(_in(u.c.at, window.end - seconds, window.end))
                ).scalar_one()
            )
            for label, seconds in active_windows.items()
        }
        ticket_rows = {
            operation: (int(count), int(quantity))
            for operation, count, quantity in conn.execute(
                select(t.c.operation, func.count(), func.sum(t.c.quantity))
                .where(_in(t.c.at, window.start, window.end))
                .group_by(t.c.operation)
            )
        }
    return BusinessFigures(
        window=window,
        payments=PaymentFigures(int(outcomes.get(SUCCEEDED, 0)), int(outcomes.get(FAILED, 0))),
        revenue=revenue,
        active_users=active_users,
        tickets=[TicketOperationFigures(op, *ticket_rows.get(op, (0, 0))) for op in TICKET_OPERATIONS],
    )


def business_totals_by_name(store: Store) -> dict[str, dict[str, int]]:
    """All-time totals (never purged): name -> label -> value, for the Prometheus counters."""
    totals: dict[str, dict[str, int]] = {}
    with store.read() as conn:
        for name, label, value in conn.execute(select(business_totals.c.name, business_totals.c.label,
                                                      business_totals.c.value)):
            totals.setdefault(name, {})[label] = int(value)
    return totals


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def business_json(figures: BusinessFigures) -> dict[str, Any]:
    payments = figures.payments
    return {
        "payments.success_rate": _rounded(payments.success_rate),
        "payments.failure_rate": _rounded(payments.failure_rate),
        "payments.count": payments.total,
        "payments.succeeded": payments.succeeded,
        "payments.failed": payments.failed,
        "revenue": [
            {"currency": r.currency, "minorUnits": r.amount_minor, "amount": r.amount, "payments": r.payments}
            for r in figures.revenue
        ],
        "users.active": figures.active_users,
        "tickets.operations": {
            op.operation: {"operations": op.operations, "tickets": op.tickets} for op in figures.tickets
        },
    }


def business_prometheus(figures: BusinessFigures, totals: dict[str, dict[str, int]],
                        currencies: tuple[str, ...] = ()) -> list[Metric]:
    """Counters from the all-time totals (so rate() works), gauges for the window's ratios and users.

    Every family is in every exposition, from the first scrape: counters at 0 before their first
    event (revenue for each of ``currencies``, REVENUE_CURRENCIES, so increase() sees the first
    payment), and the success ratio as NaN while there is no payment to take it from (a 0 would
    read "every payment failed"; NaN is Prometheus' "no value", and no comparison with it holds).
    """
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

    payments = CounterMetricFamily(
        "centinela_payments", "Payments recorded since the store began, by outcome.", labels=["outcome"]
    )
    for outcome in PAYMENT_OUTCOMES:
        payments.add_metric([outcome], totals.get("payments", {}).get(outcome, 0))
    revenue = CounterMetricFamily(
        "centinela_revenue_minor_units",
        "Amount of succeeded payments since the store began, in minor units of the currency (cents for EUR).",
        labels=["currency"],
    )
    revenue_totals = totals.get("revenue_minor_units", {})
    for currency in sorted(set(revenue_totals) | set(currencies)):
        revenue.add_metric([currency], revenue_totals.get(currency, 0))
    operations = CounterMetricFamily(
        "centinela_ticket_operations", "Ticket operations recorded since the store began.", labels=["operation"]
    )
    tickets = CounterMetricFamily(
        "centinela_tickets", "Tickets affected (sum of quantities) since the store began.", labels=["operation"]
    )
    for operation in TICKET_OPERATIONS:
        operations.add_metric([operation], totals.get("ticket_operations", {}).get(operation, 0))
        tickets.add_metric([operation], totals.get("tickets", {}).get(operation, 0))
    active = GaugeMetricFamily("centinela_active_users", "Distinct users active in the trailing window.",
                               labels=["window"])
    for label, count in figures.active_users.items():
        active.add_metric([label], count)
    success = GaugeMetricFamily(
        "centinela_payment_success_ratio",
        "Share of payments that succeeded over the window (0-1); NaN while the window has no payment.",
        labels=["window"],
    )
    ratio = figures.payments.failure_ratio
    success.add_metric([figures.window.label], math.nan if ratio is None else 1.0 - ratio)
    return [payments, revenue, operations, tickets, active, success]


def business_datadog(figures: BusinessFigures, currencies: tuple[str, ...] = ()) -> list[DatadogPoint]:
    """The window's figures under the JSON names; counts carry the window as their interval (0 for each of
    ``currencies`` without revenue in it). Rates without a payment are not sent: Datadog takes no NaN."""
    interval = max(1, int(round(figures.window.seconds)))
    payments = figures.payments
    points: list[DatadogPoint] = []
    if payments.total:
        points += [
            DatadogPoint("payments.success_rate", float(payments.success_rate or 0.0)),
            DatadogPoint("payments.failure_rate", float(payments.failure_rate or 0.0)),
        ]
    points += [
        DatadogPoint("payments.count", float(payments.succeeded), "count", ("outcome:succeeded",), interval),
        DatadogPoint("payments.count", float(payments.failed), "count", ("outcome:failed",), interval),
    ]
    revenue = {r.currency: r.amount_minor for r in figures.revenue}
    points += [
        DatadogPoint("payments.revenue_minor_units", float(revenue.get(currency, 0)), "count",
                     (f"currency:{currency}",), interval)
        for currency in sorted(set(revenue) | set(currencies))
    ]
    points += [DatadogPoint("users.active", float(n), tags=(f"window:{label}",)) for label, n in
               figures.active_users.items()]
    for op in figures.tickets:
        tags = (f"operation:{op.operation}",)
        points.append(DatadogPoint("tickets.operations", float(op.operations), "count", tags, interval))
        points.append(DatadogPoint("tickets.quantity", float(op.tickets), "count", tags, interval))
    return points


class BusinessProvider:
    """``monitoring.metric_categories["business"]``; ``currencies`` are exported at 0 before their first payment."""

    def __init__(self, store: Store, currencies: tuple[str, ...] = ()) -> None:
        self.store = store
        self.currencies = currencies

    def __call__(self, window: TimeWindow) -> CategoryReport:
        figures = business_figures(self.store, window)
        return CategoryReport(
            json=business_json(figures),
            prometheus=business_prometheus(figures, business_totals_by_name(self.store), self.currencies),
            datadog=business_datadog(figures, self.currencies),
        )
