"""/api/monitoring/errors (metrics key): the error groups that error tracking stored.

The capture itself (Flask's ``got_request_exception``) is connected by the extension, the
tracker and its flush are built in the composition root (``monitoring.services``).
"""
from __future__ import annotations

from typing import Annotated

from flask import Response, jsonify
from pydantic import ConfigDict, Field

from monitoring.api.contract import (
    Document,
    Moment,
    QueryModel,
    ServiceFilter,
    Timestamp,
    endpoint,
    sometimes_absent,
    whole_number,
)
from monitoring.errors.tracking import list_error_groups
from monitoring.extension import current_services
from monitoring.security.keys import METRICS

MAX_LIMIT = 200

class ErrorsQuery(QueryModel):
    since: Moment = Field(None, description="Only groups last seen at or after this time.")
    limit: Annotated[int, whole_number(1, MAX_LIMIT)] = 50
    service: ServiceFilter = Field(
        None, description="Only this service's error groups (SERVICE_NAME of an embedded app, service.name of an "
        "ingested one); every service when absent.")


class ErrorGroupSummary(Document):
    """One fingerprint: its count, first and last seen (the metrics export lists these, without a trace)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=sometimes_absent("countInWindow"))

    fingerprint: str = Field(description="Hash of the exception type and the innermost frame of the app's own code.")
    service: str = Field(description="The service the errors came from.")
    type: str
    where: str = Field(description="module:function of that frame.")
    line: int = Field(description="Line of the latest occurrence.")
    route: str = Field(description="Method and URL rule of the latest occurrence.")
    message: str = Field(description="Sanitised.")
    count: int
    first_seen: Timestamp = Field(alias="firstSeen")
    last_seen: Timestamp = Field(alias="lastSeen")
    count_in_window: int = Field(alias="countInWindow", description="Occurrences in the window asked "
                                        "for, where there is one.")


class ErrorGroup(ErrorGroupSummary):
    stack_trace: str = Field(alias="stackTrace", description="Sanitised trace of the latest occurrence.")


class ErrorGroups(Document):
    groups: list[ErrorGroup]


@endpoint(key=METRICS, query=ErrorsQuery, responses={200: ErrorGroups}, tags=["errors"])
def errors(query: ErrorsQuery) -> Response:
    """Error groups

    Unhandled exceptions of the monitored app grouped by fingerprint, most recently seen first,
    each with its count, first and last seen and one sanitised stack trace. Captures reach the
    store on the next flush (METRICS_FLUSH_INTERVAL).
    """
    groups = list_error_groups(current_services().store, since=query.since, limit=query.limit,
                               service=query.service)
    return jsonify({"groups": [group.to_json() for group in groups]})
