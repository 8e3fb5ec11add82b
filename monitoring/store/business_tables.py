"""Business events (payments, tickets, user activity) and their all-time totals.

Events are kept one row each for ``METRICS_RETENTION_DAYS`` so that any window (and the
count of *distinct* users in it) is one query. ``event_id`` is the client's optional
idempotency key: unique per table (NULLs never collide), so a retried batch inserts
nothing twice. Money is integer minor units beside an ISO 4217 code, never a float.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Double, Index, Integer, String, Table, UniqueConstraint

from monitoring.store.schema import Id, metadata

EVENT_ID_LENGTH = 128
LABEL_LENGTH = 64


def _event_table(name: str, *columns: Any) -> Table:
    """An event table: surrogate id, optional idempotency key, event time, receipt time, and ``columns``."""
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("event_id", String(EVENT_ID_LENGTH), nullable=True, unique=True),
        Column("at", Double, nullable=False),  # when it happened (the client's timestamp, or receipt)
        Column("recorded_at", Double, nullable=False),
        *columns,
    )


payment_events = _event_table(
    "payment_events",
    Column("outcome", String(16), nullable=False),  # succeeded | failed
    Column("amount_minor", BigInteger, nullable=False),  # integer minor units of ``currency``
    Column("currency", String(3), nullable=False),  # ISO 4217
    Column("provider", String(LABEL_LENGTH), nullable=False, default=""),
    Column("failure_code", String(LABEL_LENGTH), nullable=False, default=""),
    Index("ix_payment_events_at", "at"),
)

ticket_events = _event_table(
    "ticket_events",
    Column("operation", String(16), nullable=False),  # purchased | validated | scanned | ...
    Column("ticket_type", String(LABEL_LENGTH), nullable=False, default=""),
    Column("quantity", Integer, nullable=False),
    Index("ix_ticket_events_at", "at"),
)

user_activity_events = _event_table(
    "user_activity_events",
    # HMAC-SHA256 (hex) of the user id under USER_ID_HASH_KEY: the id itself is never stored.
    Column("user_hash", String(64), nullable=False),
    Column("action", String(LABEL_LENGTH), nullable=False),
    # (at, user_hash) lets COUNT(DISTINCT user_hash) over a window be answered from the index.
    Index("ix_user_activity_events_at_user", "at", "user_hash"),
)

# Monotonic totals since the store was created, for Prometheus counters: they only ever grow
# (retention never touches them), so rate() over them is right even while old events are purged.
business_totals = Table(
    "business_totals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),  # payments | revenue_minor_units | ticket_operations | tickets
    Column("label", String(LABEL_LENGTH), nullable=False),  # outcome, currency or operation
    Column("value", BigInteger, nullable=False),
    UniqueConstraint("name", "label", name="uq_business_totals_name_label"),
)
