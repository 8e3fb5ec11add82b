"""The notification outbox: one row per (notification, channel[, alert]) delivery.

A row is written in the same transaction as the alert change that causes it and is then
owned by the delivery job. ``status`` moves pending → sending (claimed, with a token and an
expiry) → delivered | failed | gave_up, or back to pending with a later ``next_attempt_at``.
A row left in ``sending`` past ``claim_expires_at`` (its process died mid-send) is due again.
"""
from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text

from monitoring.store.schema import Id, metadata

notify_deliveries = Table(
    "notify_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Sent as the Idempotency-Key header (and in the body): the same on every attempt.
    Column("idempotency_key", String(320), nullable=False, unique=True),
    Column("notification_id", String(160), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("event", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("summary", String(300), nullable=False, default=""),
    Column("payload", Text, nullable=False),  # the sanitised Notification as JSON; rendered at send time
    Column("status", String(16), nullable=False),  # pending | sending | delivered | failed | gave_up
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Double, nullable=False),
    Column("give_up_at", Double, nullable=False),
    Column("next_attempt_at", Double, nullable=True),  # None once finished
    Column("claim_token", String(64), nullable=True),
    Column("claim_expires_at", Double, nullable=True),
    Column("last_attempt_at", Double, nullable=True),
    Column("last_status_code", Integer, nullable=True),  # None: no HTTP answer (refused, timeout)
    Column("last_error", Text, nullable=False, default=""),  # why the last attempt failed ("HTTP 503", "timeout")
    Column("last_answer", Text, nullable=False, default=""),  # the receiver's body, truncated and sanitised
    Column("last_latency_ms", Double, nullable=True),
    Column("finished_at", Double, nullable=True),
    Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
    Index("ix_notify_deliveries_notification", "notification_id"),
    Index("ix_notify_deliveries_created", "created_at"),
)
