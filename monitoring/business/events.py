"""Business events: one validator for the Python API and the HTTP endpoint, and the recorder.

An event is a JSON-like mapping with a ``type`` (payment | ticket | user_activity), an
optional ``id`` (idempotency key: a repeated id is ignored) and an optional ``timestamp``
(RFC 3339; default: now), plus the fields of its type. ``parse_events`` checks every item
and reports *every* bad field at once; ``BusinessRecorder.record`` writes a batch in one
transaction, so a batch is stored whole or not at all.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitoring.business.currencies import is_currency
from monitoring.clock import Clock
from monitoring.durations import DAY
from monitoring.security.keys import load_or_generate_secret
from monitoring.security.pii import sanitise_text
from monitoring.store.business_tables import (
    EVENT_ID_LENGTH,
    LABEL_LENGTH,
    business_totals,
    payment_events,
    ticket_events,
    user_activity_events,
)
from monitoring.store.database import Store

PAYMENT = "payment"
TICKET = "ticket"
USER_ACTIVITY = "user_activity"
EVENT_TYPES = (PAYMENT, TICKET, USER_ACTIVITY)

SUCCEEDED = "succeeded"
FAILED = "failed"
PAYMENT_OUTCOMES = (SUCCEEDED, FAILED)
TICKET_OPERATIONS = ("purchased", "validated", "scanned", "transferred", "refunded", "cancelled")

MAX_BATCH = 500  # events per request; documented in the README and the OpenAPI document
# 10^15 minor units is ten trillion euros: far above any one payment, and small enough that
# SQLite's 64-bit SUM cannot overflow before about 9,000 such payments share a window.
MAX_AMOUNT_MINOR = 10**15
MAX_QUANTITY = 10_000
MAX_USER_ID_LENGTH = 256
# An id's and a label's longest, from their columns (the HTTP contract documents them).
MAX_EVENT_ID_LENGTH = EVENT_ID_LENGTH
MAX_LABEL_LENGTH = LABEL_LENGTH
# Client clocks drift: a little ahead is accepted, far ahead is a bug (or ms sent as seconds).
MAX_FUTURE_SECONDS = 300.0

_COMMON_FIELDS = frozenset({"type", "id", "timestamp"})
_TYPE_FIELDS: dict[str, frozenset[str]] = {
    PAYMENT: frozenset({"outcome", "amount", "currency", "provider", "failure_code"}),
    TICKET: frozenset({"operation", "ticket_type", "quantity"}),
    USER_ACTIVITY: frozenset({"user_id", "action"}),
}
_EVENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]*")
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+\-]\d{2}:\d{2})")


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one event (``field`` is None when the item itself is wrong)."""

    index: int
    field: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class InvalidEvents(ValueError):
    """Raised with every problem found in a batch; nothing of the batch was stored."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(
            f"event {e.index}: {e.field + ': ' if e.field else ''}{e.message}" for e in self.errors[:5]
        )
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(shown + more)


@dataclass(frozen=True)
class PaymentEvent:
    at: float
    outcome: str
    amount_minor: int
    currency: str
    provider: str = ""
    failure_code: str = ""
    event_id: str | None = None


@dataclass(frozen=True)
class TicketEvent:
    at: float
    operation: str
    quantity: int = 1
    ticket_type: str = ""
    event_id: str | None = None


@dataclass(frozen=True)
class UserActivityEvent:
    at: float
    user_hash: str  # HMAC of the user id: the id itself is never kept
    action: str
    event_id: str | None = None


BusinessEvent = PaymentEvent | TicketEvent | UserActivityEvent


@dataclass(frozen=True)
class RecordResult:
    """How many events were stored, and how many were ignored because their id was seen before."""

    accepted: int
    duplicates: int

    def to_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}


class UserIdHasher:
    """Keyed HMAC-SHA256 of user ids: counts distinct users without storing who they are.

    A plain hash of a user id (often an e-mail or a small integer) is reversed by trying
    candidates; the key makes that impossible without it.
    """

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the user id hash key must not be empty")
        self._key = key.encode()

    def hash(self, user_id: str) -> str:
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "UserIdHasher(key=[redacted])"

    @classmethod
    def load(cls, configured_key: str, var_dir: str) -> UserIdHasher:
        """USER_ID_HASH_KEY if set, else the key generated once into VAR_DIR (as the API keys are)."""
        if configured_key:
            return cls(configured_key)
        key, _generated = load_or_generate_secret(Path(var_dir) / "user-id-hash-key", None)
        return cls(key)


# --- validation -------------------------------------------------------------------------------


@dataclass
class _ItemChecker:
    """Reads one event's fields, collecting a FieldError for every bad one."""

    index: int
    item: Mapping[str, Any]
    errors: list[FieldError] = field(default_factory=list)

    def fail(self, name: str | None, message: str) -> None:
        self.errors.append(FieldError(self.index, name, message))

    def choice(self, name: str, options: Sequence[str]) -> str | None:
        value = self.item.get(name)
        if value is None:
            self.fail(name, f"required: one of {', '.join(options)}")
            return None
        if not isinstance(value, str) or value not in options:
            self.fail(name, f"must be one of {', '.join(options)}")
            return None
        return value

    def whole_number(self, name: str, low: int, high: int, default: int | None = None) -> int | None:
        value = self.item.get(name)
        if value is None:
            if default is None:
                self.fail(name, f"required: a whole number from {low} to {high}")
            return default
        # bool is an int in Python (True == 1) but never a count or an amount; 10.0 is not whole here.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(name, f"must be a whole number from {low} to {high}")
            return None
        return value

    def label(self, name: str, required: bool = False) -> str | None:
        """A short free-text label (provider, ticket type, action), stored sanitised."""
        value = self.item.get(name)
        if value is None:
            if required:
                self.fail(name, f"required: a non-empty string of at most {LABEL_LENGTH} characters")
            return None if required else ""
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > LABEL_LENGTH
            or any(ord(char) < 32 or ord(char) == 127 for char in value)
        ):
            self.fail(name, f"must be a non-empty string of at most {LABEL_LENGTH} characters, "
                            "without control characters")
            return None
        return sanitise_text(value.strip())[:LABEL_LENGTH]

    def event_id(self) -> str | None:
        value = self.item.get("id")
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > EVENT_ID_LENGTH or not _EVENT_ID_RE.fullmatch(value):
            self.fail("id", f"must be a string of at most {EVENT_ID_LENGTH} letters, digits, '.', '_', ':' or '-'")
            return None
        # Ids are compared, not read, so they are stored as sent; one the sanitiser would change
        # (a card number, an IP) is refused rather than stored or silently altered.
        if sanitise_text(value) != value:
            self.fail("id", "must not contain personal data such as a card number or an IP address")
            return None
        return value

    def timestamp(self, now: float, max_age_seconds: float) -> float | None:
        value = self.item.get("timestamp")
        if value is None:
            return now
        moment: datetime | None = None
        if isinstance(value, datetime):  # only from the Python API: JSON has no datetime
            moment = value
        elif isinstance(value, str) and _RFC3339_RE.fullmatch(value.strip()):
            text = value.strip().replace("z", "Z")
            try:
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
            except ValueError:  # the right shape but no such date (month 13, 30 February)
                moment = None
        if moment is None:
            self.fail("timestamp", "must be an RFC 3339 timestamp with an offset, such as 2026-07-04T18:30:00Z")
            return None
        if moment.tzinfo is None:
            self.fail("timestamp", "must carry a UTC offset (Z or +hh:mm)")
            return None
        try:
            at = moment.astimezone(UTC).timestamp()
        except (OverflowError, ValueError, OSError):  # year 1 at +05:00 or 9999 at -05:00: no such UTC moment
            self.fail("timestamp", "must be a moment between the years 1970 and 9999")
            return None
        if at > now + MAX_FUTURE_SECONDS:
            self.fail("timestamp", f"is more than {MAX_FUTURE_SECONDS:g} seconds in the future")
            return None
        if at < now - max_age_seconds:
            self.fail("timestamp", f"is older than the {max_age_seconds / DAY:g}-day retention")
            return None
        return at


def _parse_one(
    index: int, item: Any, now: float, max_age_seconds: float, hasher: UserIdHasher
) -> tuple[BusinessEvent | None, list[FieldError]]:
    if not isinstance(item, Mapping):
        return None, [FieldError(index, None, "each event must be a JSON object")]
    check = _ItemChecker(index, item)
    kind = check.choice("type", EVENT_TYPES)
    if kind is None:
        return None, check.errors
    for name in sorted(set(item) - _COMMON_FIELDS - _TYPE_FIELDS[kind], key=str):
        check.fail(str(name), f"unknown field for a {kind} event")
    event_id = check.event_id()
    at = check.timestamp(now, max_age_seconds)
    event: BusinessEvent | None = None
    if kind == PAYMENT:
        outcome = check.choice("outcome", PAYMENT_OUTCOMES)
        amount = check.whole_number("amount", 0, MAX_AMOUNT_MINOR)
        currency = item.get("currency")
        if currency is None:
            check.fail("currency", "required: an ISO 4217 code such as EUR")
        elif not isinstance(currency, str) or not is_currency(currency.upper()):
            check.fail("currency", "must be an ISO 4217 currency code such as EUR, USD or JPY")
            currency = None
        provider = check.label("provider")
        failure_code = check.label("failure_code")
        if failure_code and outcome == SUCCEEDED:
            check.fail("failure_code", "only a failed payment has a failure code")
        if not check.errors:
            assert outcome is not None and amount is not None and at is not None and currency is not None
            event = PaymentEvent(at, outcome, amount, currency.upper(), provider or "", failure_code or "", event_id)
    elif kind == TICKET:
        operation = check.choice("operation", TICKET_OPERATIONS)
        quantity = check.whole_number("quantity", 1, MAX_QUANTITY, default=1)
        ticket_type = check.label("ticket_type")
        if not check.errors:
            assert operation is not None and quantity is not None and at is not None
            event = TicketEvent(at, operation, quantity, ticket_type or "", event_id)
    else:
        user_id = item.get("user_id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if user_id is None:
            check.fail("user_id", "required: the user's id (a string or an integer)")
        elif not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID_LENGTH:
            check.fail("user_id", f"must be a non-empty string of at most {MAX_USER_ID_LENGTH} characters, "
                                  "or an integer")
        action = check.label("action", required=True)
        if not check.errors:
            assert at is not None and action is not None and isinstance(user_id, str)
            event = UserActivityEvent(at, hasher.hash(user_id), action, event_id)
    return event, check.errors


def parse_events(
    items: Sequence[Any], *, now: float, max_age_seconds: float, hasher: UserIdHasher
) -> list[BusinessEvent]:
    """Validate every item; raise InvalidEvents listing every bad field, or return the events."""
    events: list[BusinessEvent] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        event, item_errors = _parse_one(index, item, now, max_age_seconds, hasher)
        errors += item_errors
        if event is not None:
            events.append(event)
    if errors:
        raise InvalidEvents(errors)
    return events


# --- recording ----------------------------------------------------------------------------


_TABLES: dict[type, Any] = {
    PaymentEvent: payment_events,
    TicketEvent: ticket_events,
    UserActivityEvent: user_activity_events,
}
# Columns read back from the inserted rows to update the all-time totals.
_RETURNED_COLUMNS: dict[Any, tuple[str, ...]] = {
    payment_events: ("outcome", "currency", "amount_minor"),
    ticket_events: ("operation", "quantity"),
    user_activity_events: (),
}


def _total_increments(table: Any, inserted: Sequence[Any]) -> dict[tuple[str, str], int]:
    """What the inserted rows add to the all-time totals (Prometheus counters)."""
    increments: dict[tuple[str, str], int] = defaultdict(int)
    for row in inserted:
        if table is payment_events:
            increments[("payments", row.outcome)] += 1
            if row.outcome == SUCCEEDED:
                increments[("revenue_minor_units", row.currency)] += int(row.amount_minor)
        elif table is ticket_events:
            increments[("ticket_operations", row.operation)] += 1
            increments[("tickets", row.operation)] += int(row.quantity)
    return increments


class BusinessRecorder:
    """Validates and stores business events for one store; shared by the Python API and HTTP."""

    def __init__(self, store: Store, clock: Clock, hasher: UserIdHasher, max_age_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.hasher = hasher
        self.max_age_seconds = max_age_seconds

    def parse(self, items: Sequence[Any]) -> list[BusinessEvent]:
        return parse_events(items, now=self.clock.now(), max_age_seconds=self.max_age_seconds, hasher=self.hasher)

    def record_raw(self, items: Sequence[Any]) -> RecordResult:
        """Validate and store: InvalidEvents (nothing stored) or the counts."""
        return self.record(self.parse(items))

    def record(self, events: Sequence[BusinessEvent]) -> RecordResult:
        """Store the events in one transaction; events whose id is already stored are skipped."""
        if not events:
            return RecordResult(0, 0)
        recorded_at = self.clock.now()
        rows_by_table: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for event in events:  # the dataclass fields are the column names
            rows_by_table[_TABLES[type(event)]].append(asdict(event) | {"recorded_at": recorded_at})
        accepted = 0
        totals: dict[tuple[str, str], int] = defaultdict(int)
        with self.store.write() as conn:
            for table, rows in rows_by_table.items():
                insert = self.store.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
                # RETURNING gives back only the rows actually inserted: the duplicates are the rest.
                returned = [table.c[name] for name in _RETURNED_COLUMNS[table]]
                inserted = conn.execute(insert.returning(table.c.id, *returned), rows).all()
                accepted += len(inserted)
                for key, amount in _total_increments(table, inserted).items():
                    totals[key] += amount
            if totals:
                totals_insert = self.store.insert(business_totals)
                # One row per (name, label), in a fixed order, so concurrent writers never deadlock.
                conn.execute(
                    totals_insert.on_conflict_do_update(
                        index_elements=["name", "label"],
                        set_={"value": business_totals.c.value + totals_insert.excluded.value},
                    ),
                    [{"name": name, "label": label, "value": value} for (name, label), value in sorted(totals.items())],
                )
        return RecordResult(accepted, len(events) - accepted)


def python_timestamp(value: datetime | float | None) -> datetime | None:
    """The Python API's ``timestamp``: a timezone-aware datetime, epoch seconds, or None (now)."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidEvents([FieldError(0, "timestamp", "must be a timezone-aware datetime or epoch seconds")])
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidEvents([FieldError(0, "timestamp", "is not a representable time")]) from None
