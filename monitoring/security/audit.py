"""The audit log: every admin action, configuration change and refused access, in the store."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from monitoring.clock import Clock, isoformat
from monitoring.security.pii import sanitise
from monitoring.store.database import Store
from monitoring.store.schema import audit_log

ADMIN_ACTION = "admin_action"
CONFIG_CHANGE = "config_change"
ACCESS_DENIED = "access_denied"
KINDS = (ADMIN_ACTION, CONFIG_CHANGE, ACCESS_DENIED)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    kind: str
    actor: str
    action: str
    client_ip: str
    path: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": isoformat(self.at),
            "kind": self.kind,
            "actor": self.actor,
            "action": self.action,
            "clientIp": self.client_ip,
            "path": self.path,
            "detail": self.detail,
        }


class AuditLog:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def record(
        self,
        kind: str,
        actor: str,
        action: str,
        *,
        client_ip: str = "",
        path: str = "",
        detail: dict[str, Any] | None = None,
        conn: Any = None,
    ) -> None:
        """Write one entry; pass ``conn`` to write it in the caller's transaction (with the change itself)."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        row = {
            "at": self.clock.now(),
            "kind": kind,
            "actor": actor[:64],
            "action": action[:128],
            "client_ip": client_ip[:64],
            "path": path[:512],
            "detail": sanitise(detail or {}),
        }
        if conn is not None:
            conn.execute(audit_log.insert().values(**row))
            return
        with self.store.write() as write_conn:
            write_conn.execute(audit_log.insert().values(**row))

    def page(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kind: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first; page on with ``before_id`` = the last id of the previous page."""
        query = self._filtered(since, until, kind)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        query = query.order_by(audit_log.c.id.desc()).limit(limit)
        with self.store.read() as conn:
            return [self._entry(row) for row in conn.execute(query).mappings()]

    def iter_range(self, since: float | None, until: float | None, kind: str | None = None) -> Iterator[AuditEntry]:
        """Oldest first, for export, in chunks so a large range never sits in memory at once."""
        after = 0
        while True:
            query = self._filtered(since, until, kind).where(audit_log.c.id > after)
            with self.store.read() as conn:
                rows = list(conn.execute(query.order_by(audit_log.c.id).limit(1000)).mappings())
            if not rows:
                return
            for row in rows:
                yield self._entry(row)
            after = rows[-1]["id"]

    @staticmethod
    def _filtered(since: float | None, until: float | None, kind: str | None) -> Any:
        query = select(audit_log)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if until is not None:
            query = query.where(audit_log.c.at < until)
        if kind is not None:
            query = query.where(audit_log.c.kind == kind)
        return query

    @staticmethod
    def _entry(row: Any) -> AuditEntry:
        return AuditEntry(
            id=row["id"],
            at=row["at"],
            kind=row["kind"],
            actor=row["actor"],
            action=row["action"],
            client_ip=row["client_ip"],
            path=row["path"],
            detail=row["detail"] or {},
        )


CSV_COLUMNS = ("id", "at", "kind", "actor", "action", "clientIp", "path", "detail")


def render_csv(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """CSV lines (header first) for a compliance export, streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for entry in entries:
        buffer.seek(0)
        buffer.truncate()
        row = entry.to_json()
        row["detail"] = json.dumps(row["detail"], sort_keys=True)
        writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
        yield buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    """Defuse spreadsheet formulas: a refused request's path is attacker-chosen text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
