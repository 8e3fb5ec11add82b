"""/api/monitoring/audit: page through the audit log, or export a date range as CSV."""
from __future__ import annotations

from typing import Annotated, Any

from flask import Response, g, jsonify, request, stream_with_context
from pydantic import Field

from monitoring.api.auth import client_ip
from monitoring.api.contract import (
    Content,
    Document,
    Moment,
    QueryModel,
    Timestamp,
    choice,
    endpoint,
)
from monitoring.api.paging import Before, NextPage, next_page, page_size
from monitoring.clock import isoformat
from monitoring.extension import current_monitoring
from monitoring.security.audit import ADMIN_ACTION, KINDS, render_csv
from monitoring.security.keys import ADMIN

MAX_PAGE = 500


class AuditQuery(QueryModel):
    since: Moment = Field(None, description="RFC 3339 timestamp (or epoch seconds).")
    until: Moment = Field(None, description="RFC 3339 timestamp (or epoch seconds).")
    kind: Annotated[str | None, choice(*KINDS)] = None
    limit: Annotated[int, page_size(MAX_PAGE)] = 100
    before: Before = Field(None, description="Page on: the `next.before` value of the previous page.")
    format: Annotated[str, choice("json", "csv")] = "json"


class AuditEntry(Document):
    id: int
    at: Timestamp
    kind: str
    actor: str = Field(description="Key id (role and hash prefix), never the key.")
    action: str
    client_ip: str = Field(alias="clientIp", description="Anonymised client address.")
    path: str
    detail: dict[str, Any]


class AuditPage(Document):
    entries: list[AuditEntry]
    next: NextPage | None


@endpoint(key=ADMIN, query=AuditQuery, responses={200: AuditPage}, tags=["security"],
          extra_content={200: (Content("text/csv", "A page of entries, or a CSV file.", {"type": "string"}),)})
def audit(query: AuditQuery) -> Response:
    """Audit log

    Admin actions, configuration changes and refused access attempts, newest first.
    `format=csv` exports the range oldest first for compliance reporting.
    """
    log = current_monitoring().audit
    if query.format == "csv":
        # Exporting the audit trail is itself an admin action worth a line in it.
        log.record(
            ADMIN_ACTION,
            g.api_key.key_id,
            "audit.export",
            client_ip=client_ip(),
            path=request.path,
            detail={"since": isoformat(query.since), "until": isoformat(query.until), "kind": query.kind},
        )
        return Response(
            stream_with_context(render_csv(log.iter_range(query.since, query.until, query.kind))),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="centinela-audit.csv"'},
        )
    entries = log.page(since=query.since, until=query.until, kind=query.kind, before_id=query.before,
                       limit=query.limit)
    return jsonify({"entries": [e.to_json() for e in entries], "next": next_page(entries, query.limit)})
