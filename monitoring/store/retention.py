"""Retention: each kind of data is deleted once older than its configured age."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Column, Table, delete, select

from monitoring.store.database import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionRule:
    """Rows of ``table`` whose ``column`` (epoch seconds) is older than ``max_age_seconds`` go."""

    table: Table
    column: Column[float]
    max_age_seconds: float


def purge_expired(store: Store, rules: list[RetentionRule], now: float, batch: int = 5000) -> dict[str, int]:
    """Delete expired rows in small batches (short write transactions); return rows removed per table."""
    removed: dict[str, int] = {}
    for rule in rules:
        try:
            total = _purge(store, rule, now, batch)
        except Exception:  # one table that cannot be purged must not keep the others growing
            log.exception("retention: could not purge %s", rule.table.name)
            continue
        removed[rule.table.name] = removed.get(rule.table.name, 0) + total
    return removed


def _purge(store: Store, rule: RetentionRule, now: float, batch: int) -> int:
    cutoff = now - rule.max_age_seconds
    primary = list(rule.table.primary_key.columns)[0]
    total = 0
    while True:
        with store.write() as conn:
            ids = select(primary).where(rule.column < cutoff).limit(batch).scalar_subquery()
            count = conn.execute(delete(rule.table).where(primary.in_(ids))).rowcount
        total += count
        if count < batch:
            return total
