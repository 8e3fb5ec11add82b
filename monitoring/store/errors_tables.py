"""Captured errors: one row per fingerprint (group), per-group counts in 10-second buckets,
and one all-time total per service for the Prometheus counter.

A group belongs to one service (its fingerprint hashes the service, except for the default
service whose fingerprints predate the dimension); the counts of a service are its groups'
counts, found through the group's fingerprint.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Index, Integer, String, Table, Text, UniqueConstraint

from monitoring.store.metrics_tables import DEFAULT_SERVICE, SERVICE_LENGTH
from monitoring.store.schema import Id, metadata

error_groups = Table(
    "error_groups",
    metadata,
    Column("fingerprint", String(32), primary_key=True),  # hash of type + innermost frame of our code
    Column("service", String(SERVICE_LENGTH), nullable=False, server_default=DEFAULT_SERVICE),
    Column("exception_type", String(200), nullable=False),  # e.g. "app.payments.CardDeclined"
    Column("module", String(200), nullable=False),  # module of the innermost frame of our code
    Column("function", String(200), nullable=False),
    Column("line", Integer, nullable=False),  # of the latest occurrence: display only, not in the fingerprint
    Column("message", Text, nullable=False, default=""),  # sanitised
    Column("stack_trace", Text, nullable=False, default=""),  # sanitised, of a recent occurrence
    Column("route", String(300), nullable=False, default=""),  # "GET /tickets/<id>", the URL rule, not the path
    Column("count", BigInteger, nullable=False),
    Column("first_seen", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    Index("ix_error_groups_last_seen", "last_seen"),
    Index("ix_error_groups_service_last_seen", "service", "last_seen"),
)

# A surrogate key (not the natural (fingerprint, bucket) pair) because retention deletes by the
# first primary-key column: deleting by fingerprint would take a group's recent buckets too.
error_counts = Table(
    "error_counts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("bucket_start", Double, nullable=False),  # epoch seconds, a multiple of the bucket width
    Column("count", BigInteger, nullable=False),
    UniqueConstraint("fingerprint", "bucket_start", name="uq_error_counts_fingerprint_bucket"),
    Index("ix_error_counts_bucket", "bucket_start"),
)

error_totals = Table(
    "error_totals",
    metadata,
    Column("name", String(32), primary_key=True),  # "errors": every captured error since the store began
    Column("service", String(SERVICE_LENGTH), primary_key=True, server_default=DEFAULT_SERVICE),
    Column("value", BigInteger, nullable=False),
)
