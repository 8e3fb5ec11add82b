"""Alerting tables: rule changes, alerts and their history, silences, and engine settings.

``alerts`` holds one row per alert episode: a rule and label set (its fingerprint) that went
pending, maybe fired, and ended. ``open_fingerprint`` is the fingerprint while the episode is
open (pending or firing) and NULL once resolved: its unique index allows one open alert per
fingerprint whoever writes, so two evaluators racing cannot open the same alert twice.
"""
from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text

from monitoring.store.schema import Id, JsonText, metadata

# Rules changed or added through the API: the full definition as JSON, which wins over the
# default built from the environment. A default rule never changed has no row.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("definition", JsonText, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("updated_by", String(64), nullable=False, default=""),
)

# What the latest evaluation of each rule found: for the rules listing.
alert_rule_status = Table(
    "alert_rule_status",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("evaluated_at", Double, nullable=False),
    Column("error", Text, nullable=False, default=""),  # why the figure could not be read ("" when it could)
    Column("samples", Integer, nullable=False, default=0),  # label sets the figure gave
    Column("breaching", Integer, nullable=False, default=0),  # of which over the threshold
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(64), nullable=False),  # "" for a manual alert
    Column("state", String(16), nullable=False),  # pending | firing | resolved
    Column("severity", String(16), nullable=False),
    Column("labels", JsonText, nullable=False),  # sanitised
    Column("annotations", JsonText, nullable=False),  # sanitised
    Column("group_key", String(512), nullable=False),
    Column("value", Double, nullable=True),  # the figure at the latest evaluation (None: no data then)
    Column("active_at", Double, nullable=False),  # when the condition first held (pending since)
    Column("last_active_at", Double, nullable=False),  # the latest evaluation at which it held
    # Set while a firing alert's condition no longer holds (it is kept firing by keep_firing_for):
    # nothing but its resolve is sent. Cleared again if the condition returns. (Migration 2.)
    Column("cleared_at", Double, nullable=True),
    Column("fired_at", Double, nullable=True),
    Column("resolved_at", Double, nullable=True),
    Column("resolved_by", String(64), nullable=False, default=""),  # "" by evaluation; a key id by hand
    Column("resolve_comment", Text, nullable=False, default=""),
    Column("acknowledged_at", Double, nullable=True),
    Column("acknowledged_by", String(64), nullable=False, default=""),
    Column("ack_comment", Text, nullable=False, default=""),
    Column("notify_after", Double, nullable=True),  # the earliest time its first notification may go
    Column("first_notified_at", Double, nullable=True),
    Column("last_notified_at", Double, nullable=True),
    Column("notifications", Integer, nullable=False, default=0),  # firing notifications sent (first + repeats)
    Column("escalated_at", Double, nullable=True),
    Column("muted", String(200), nullable=False, default=""),  # why it is not sent: silence / maintenance / inhibition
    Column("muted_since", Double, nullable=True),
    Column("open_fingerprint", String(64), nullable=True, unique=True),
    Column("updated_at", Double, nullable=False),
    Index("ix_alerts_fingerprint", "fingerprint"),
    Index("ix_alerts_state", "state"),
    Index("ix_alerts_resolved_at", "resolved_at"),
)

# Everything that happened to an alert, oldest first: the history the API shows.
alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", Id, nullable=False),
    Column("at", Double, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(64), nullable=False, default=""),  # a key id for admin actions, "" for the engine
    Column("detail", JsonText, nullable=False, default={}),  # sanitised
    Index("ix_alert_events_alert", "alert_id"),
    Index("ix_alert_events_at", "at"),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("matchers", JsonText, nullable=False),  # list of matcher strings: ["alertname=\"X\""]
    Column("starts_at", Double, nullable=False),
    Column("ends_at", Double, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expired_by", String(64), nullable=False, default=""),  # who ended it early, if anyone
    Index("ix_alert_silences_ends_at", "ends_at"),
)

# Engine settings changed through the API (the inhibition rules), as JSON by name.
alert_settings = Table(
    "alert_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JsonText, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("updated_by", String(64), nullable=False, default=""),
)
