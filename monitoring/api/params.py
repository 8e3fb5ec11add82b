"""Query-parameter parsing shared by the blueprints: one wording for every 400 it gives."""
from __future__ import annotations

from flask import request

from monitoring.api.errors import ApiError
from monitoring.clock import parse_timestamp

MAX_ID = 2**63 - 1


def int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole number in [low, high], or ``default`` when absent; 400 otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}", "invalid_parameter")
    return value


def time_arg(name: str) -> float | None:
    """An RFC 3339 timestamp (or epoch seconds) as epoch seconds, or None when absent; 400 otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an RFC 3339 timestamp such as 2026-11-01T00:00:00Z", "invalid_parameter"
        ) from None


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices``, or None when absent; 400 listing them otherwise."""
    value = request.args.get(name) or None
    if value is not None and value not in choices:
        raise ApiError(400, f"{name} must be one of: {', '.join(choices)}", "invalid_parameter")
    return value


def flag_arg(name: str) -> bool:
    """true/false (1/0, yes/no); absent is false."""
    raw = request.args.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ApiError(400, f"{name} must be true or false", "invalid_parameter")
