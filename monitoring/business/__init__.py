"""Business metrics for the host app: ``centinela.business.record_payment(...)`` and friends,
where ``centinela = Monitoring(app)`` (or ``Monitoring.of(app)``).

Each call validates one event exactly as ``POST /api/monitoring/events`` does and stores it
at once (one short write transaction), so every worker and host sees it. The facade belongs
to one Centinela (its store, clock and user-id hash key): two apps in one process record
into their own stores.

A bad value raises ``InvalidEvents`` (a ValueError) naming the field; nothing is stored.
A repeated ``event_id`` is not an error: it returns ``RecordResult(accepted=0, duplicates=1)``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from monitoring.business.events import (
    PAYMENT,
    TICKET,
    USER_ACTIVITY,
    BusinessRecorder,
    FieldError,
    InvalidEvents,
    RecordResult,
    python_timestamp,
)

__all__ = ["BusinessEvents", "FieldError", "InvalidEvents", "RecordResult"]


class BusinessEvents:
    """The Python API over one BusinessRecorder."""

    def __init__(self, recorder: BusinessRecorder) -> None:
        self.recorder = recorder

    def record_raw(self, items: list[Any]) -> RecordResult:
        """Events as the HTTP API takes them (dicts): validated together, stored together."""
        return self.recorder.record_raw(items)

    def _record(
        self, event: dict[str, Any], event_id: str | None, timestamp: datetime | float | None, **optional: Any
    ) -> RecordResult:
        optional.update(id=event_id, timestamp=python_timestamp(timestamp))
        event.update({name: value for name, value in optional.items() if value is not None})
        return self.recorder.record_raw([event])

    def record_payment(
        self,
        outcome: str,
        amount: int,
        currency: str,
        *,
        provider: str | None = None,
        failure_code: str | None = None,
        event_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> RecordResult:
        """A payment attempt: ``outcome`` succeeded or failed, ``amount`` in integer minor units
        of the ISO 4217 ``currency`` (1999 with "EUR" is 19.99 euros)."""
        return self._record(
            {"type": PAYMENT, "outcome": outcome, "amount": amount, "currency": currency},
            event_id,
            timestamp,
            provider=provider,
            failure_code=failure_code,
        )

    def record_ticket(
        self,
        operation: str,
        *,
        ticket_type: str | None = None,
        quantity: int = 1,
        event_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> RecordResult:
        """A ticket operation: purchased, validated, scanned, transferred, refunded or cancelled."""
        return self._record(
            {"type": TICKET, "operation": operation, "quantity": quantity}, event_id, timestamp,
            ticket_type=ticket_type,
        )

    def record_user_activity(
        self,
        user_id: str | int,
        action: str,
        *,
        event_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> RecordResult:
        """A user did something; only a keyed hash of ``user_id`` is stored (for active-user counts)."""
        return self._record({"type": USER_ACTIVITY, "user_id": user_id, "action": action}, event_id, timestamp)
