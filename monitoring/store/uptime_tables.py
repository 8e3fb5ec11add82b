"""Uptime tables: the availability timeline, incidents, maintenance windows and the timeline's cursor.

``uptime_segments`` is the timeline: consecutive health rounds with the same overall status
(and the same critical dependencies down) make one row, so 90 days of 30-second rounds are a
handful of rows, kept INCIDENT_RETENTION_DAYS while individual results go after
METRICS_RETENTION_DAYS. A segment covers ``[started_at, ended_at)``; the newest has no
``ended_at`` yet and covers up to ``last_at + grace`` (a round vouches for at most ``grace``
seconds, 2.5 x HEALTH_CHECK_INTERVAL): time no segment covers is unknown.
"""
from __future__ import annotations

from sqlalchemy import Column, Double, Index, String, Table, Text

from monitoring.store.schema import Id, JsonText, metadata

uptime_segments = Table(
    "uptime_segments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_at", Double, nullable=False),  # the first round of the segment
    Column("last_at", Double, nullable=False),  # the latest round of the segment
    Column("ended_at", Double, nullable=True),  # the next segment's start, or last_at + grace after a gap
    Column("grace", Double, nullable=False),  # how long after its last round a round vouches (seconds)
    Column("status", String(16), nullable=False),  # overall status of its rounds: healthy | degraded | unhealthy
    # Comma-separated critical dependencies that were unhealthy (why the status is unhealthy).
    Column("down_services", Text, nullable=False, default=""),
    Index("ix_uptime_segments_started_at", "started_at"),
    Index("ix_uptime_segments_last_at", "last_at"),
)

# One row per cursor (``timeline``): the newest round folded into the timeline and the segment it
# extended. Locked (FOR UPDATE) by every advance, so concurrent rounds in several workers take turns.
uptime_state = Table(
    "uptime_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last_round_at", Double, nullable=True),
    Column("segment_id", Id, nullable=True),
    Column("updated_at", Double, nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("started_at", Double, nullable=False),  # the first round that found the service unhealthy
    Column("ended_at", Double, nullable=True),  # the first round that found it up again; null while open
    Column("cause", Text, nullable=False),  # sanitised: "critical dependency stripe is unhealthy (HTTP 500)"
    Column("services", JsonText, nullable=False, default=[]),  # every dependency seen unhealthy in it
    # "open" while open, NULL once closed: the unique index allows one open incident, whoever writes.
    Column("open_marker", String(8), nullable=True, unique=True),
    Column("updated_at", Double, nullable=False),
    Index("ix_incidents_started_at", "started_at"),
)

maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # one_off | weekly | cron
    Column("reason", Text, nullable=False, default=""),
    # one_off: the window itself; weekly / cron: when the schedule applies (either may be null: no bound).
    Column("starts_at", Double, nullable=True),
    Column("ends_at", Double, nullable=True),
    Column("cron", String(120), nullable=True),  # weekly windows are stored as their cron expression
    Column("duration_seconds", Double, nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("services", JsonText, nullable=False, default=[]),  # empty: the whole service
    Column("schedule", JsonText, nullable=False, default={}),  # the schedule as it was given, for display
    Column("created_by", String(64), nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Index("ix_maintenance_windows_ends_at", "ends_at"),
)
