"""Health tables: latest result per dependency, result history, state-change events, circuit breakers.

``health_events`` is the record the uptime and alerting features read: one row per change
of a dependency's status (``down``, ``degraded``, ``recovered``) or of its circuit breaker
(``breaker_opened``, ``breaker_half_open``, ``breaker_closed``), with the time it happened.
"""
from __future__ import annotations

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text

from monitoring.store.schema import Id, JsonText, metadata

# The latest result per dependency: what /api/health/check answers from (one small read).
health_status = Table(
    "health_status",
    metadata,
    Column("service", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # healthy | degraded | unhealthy | unknown (no result yet)
    Column("critical", Integer, nullable=False, default=0),
    Column("component_type", String(32), nullable=False, default="component"),
    Column("response_time_ms", Double, nullable=True),  # null when the dependency was not called
    Column("error", Text, nullable=False, default=""),  # sanitised, public: "HTTP 500", "connection refused"
    Column("checked_at", Double, nullable=True),
)

# Every result, for response-time history and the metrics window; purged after METRICS_RETENTION_DAYS.
health_results = Table(
    "health_results",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("response_time_ms", Double, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("checked_at", Double, nullable=False),
    Index("ix_health_results_checked_at", "checked_at"),
    Index("ix_health_results_service_checked_at", "service", "checked_at"),
)

# State changes; purged after INCIDENT_RETENTION_DAYS (incidents are derived from them).
health_events = Table(
    "health_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_status", String(16), nullable=False),  # a status, or a breaker state for breaker_* kinds
    Column("to_status", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Column("detail", JsonText, nullable=False, default={}),  # sanitised: error, responseTime, failures
    Index("ix_health_events_at", "at"),
    Index("ix_health_events_service_at", "service", "at"),
)

# One row per breaker, shared by every worker and host; changed only by conditional UPDATEs.
circuit_breakers = Table(
    "circuit_breakers",
    metadata,
    Column("service", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # closed | open | half_open
    Column("failures", Integer, nullable=False, default=0),  # consecutive, while closed
    Column("successes", Integer, nullable=False, default=0),  # consecutive trial successes, while half-open
    Column("opened_at", Double, nullable=True),
    Column("next_trial_at", Double, nullable=True),
    # The one caller allowed through while half-open, and until when its claim holds.
    Column("trial_holder", String(64), nullable=True),
    Column("trial_expires_at", Double, nullable=True),
    Column("updated_at", Double, nullable=False),
)
