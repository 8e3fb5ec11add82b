"""Business metrics for the host app: ``monitoring.business.record_payment(...)`` and friends.

Each call validates one event exactly as ``POST /api/monitoring/events`` does and stores it
at once (one short write transaction), so every worker and host sees it. Called inside a
request or app context of an app that has ``Monitoring(app)``, the calls find that app's
store themselves; elsewhere (a worker process, a script) pass ``monitoring=`` the
extension object (``app.extensions["centinela"]``).

A bad value raises ``InvalidEvents`` (a ValueError) naming the field; nothing is stored.
A repeated ``event_id`` is not an error: it returns ``RecordResult(accepted=0, duplicates=1)``.
"""
from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any, Callable

from monitoring.business.events import (
    PAYMENT,
    TICKET,
    USER_ACTIVITY,
    BusinessRecorder,
    FieldError,
    InvalidEvents,
    RecordResult,
    UserIdHasher,
    python_timestamp,
)

__all__ = [
    "FieldError",
    "InvalidEvents",
    "RecordResult",
    "record_payment",
    "record_ticket",
    "record_user_activity",
    "recorder_for",
]

DAY = 86400.0

_recorders: "weakref.WeakKeyDictionary[Any, BusinessRecorder]" = weakref.WeakKeyDictionary()
# Set by the Flask adapter (monitoring.api.events.install) so that this module never imports Flask.
_current_monitoring: Callable[[], Any] | None = None


def use_current_monitoring(lookup: Callable[[], Any]) -> None:
    """Tell the Python API how to find the extension of the app handling the current request."""
    global _current_monitoring
    _current_monitoring = lookup


def recorder_for(monitoring: Any) -> BusinessRecorder:
    """The recorder of one Monitoring extension (its store, clock and user-id hash key)."""
    recorder = _recorders.get(monitoring)
    if recorder is None:
        settings = monitoring.settings
        recorder = BusinessRecorder(
            monitoring.store,
            monitoring.clock,
            UserIdHasher.load(settings.user_id_hash_key, settings.var_dir),
            max_age_seconds=settings.metrics_retention_days * DAY,
        )
        _recorders[monitoring] = recorder
    return recorder


def _recorder(monitoring: Any | None) -> BusinessRecorder:
    if monitoring is not None:
        return recorder_for(monitoring)
    try:
        current = _current_monitoring() if _current_monitoring is not None else None
    except (RuntimeError, KeyError):  # outside an app context, or an app without Monitoring(app)
        current = None
    if current is None:
        raise RuntimeError(
            "no Centinela extension here: call inside a request or app context of an app with "
            "Monitoring(app), or pass monitoring=app.extensions['centinela']"
        )
    return recorder_for(current)


def _record(
    monitoring: Any | None,
    event: dict[str, Any],
    event_id: str | None,
    timestamp: datetime | float | None,
    **optional: Any,
) -> RecordResult:
    optional.update(id=event_id, timestamp=python_timestamp(timestamp))
    event.update({name: value for name, value in optional.items() if value is not None})
    return _recorder(monitoring).record_raw([event])


def record_payment(
    outcome: str,
    amount: int,
    currency: str,
    *,
    provider: str | None = None,
    failure_code: str | None = None,
    event_id: str | None = None,
    timestamp: datetime | float | None = None,
    monitoring: Any | None = None,
) -> RecordResult:
    """A payment attempt: ``outcome`` succeeded or failed, ``amount`` in integer minor units
    of the ISO 4217 ``currency`` (1999 with "EUR" is 19.99 euros)."""
    return _record(
        monitoring,
        {"type": PAYMENT, "outcome": outcome, "amount": amount, "currency": currency},
        event_id,
        timestamp,
        provider=provider,
        failure_code=failure_code,
    )


def record_ticket(
    operation: str,
    *,
    ticket_type: str | None = None,
    quantity: int = 1,
    event_id: str | None = None,
    timestamp: datetime | float | None = None,
    monitoring: Any | None = None,
) -> RecordResult:
    """A ticket operation: purchased, validated, scanned, transferred, refunded or cancelled."""
    return _record(
        monitoring,
        {"type": TICKET, "operation": operation, "quantity": quantity},
        event_id,
        timestamp,
        ticket_type=ticket_type,
    )


def record_user_activity(
    user_id: str | int,
    action: str,
    *,
    event_id: str | None = None,
    timestamp: datetime | float | None = None,
    monitoring: Any | None = None,
) -> RecordResult:
    """A user did something; only a keyed hash of ``user_id`` is stored (for active-user counts)."""
    return _record(monitoring, {"type": USER_ACTIVITY, "user_id": user_id, "action": action}, event_id, timestamp)
