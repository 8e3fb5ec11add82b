"""The HEALTH_CHECKS format: a JSON list of extra http / tcp checks, validated at start-up.

Standard library only: config.py calls ``parse_check_definitions`` while parsing the
environment, before anything else is imported, so a bad item stops start-up with one line
naming the item and the field (``item 2 ("search"): "port" must be ...``).

Item fields (snake_case; unknown fields are refused so that a typo such as ``"critcal"``
does not silently leave a dependency non-critical):

``name``                 required; 1-64 of a-z, 0-9, ``-``, ``_``; unique; not database/stripe/brevo
``type``                 required; ``"http"`` or ``"tcp"``
``url``                  http only, required; http:// or https://
``expected_status``      http only; 100-599, default 200
``host`` / ``port``      tcp only, required; port 1-65535
``timeout``              seconds, > 0 and <= 20, default 5
``critical``             true / false, default false
``latency_threshold_ms`` > 0; slower answers are ``degraded``; default none
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HTTP = "http"
TCP = "tcp"
CHECK_TYPES = (HTTP, TCP)

# The dependencies Centinela checks on its own; an extra check may not take their names.
BUILTIN_NAMES = ("database", "stripe", "brevo")

DEFAULT_TIMEOUT = 5.0
# An admin refresh runs the checks inside the request: stay well within gunicorn's 30 s worker timeout.
MAX_TIMEOUT = 20.0

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_COMMON_FIELDS = {"name", "type", "timeout", "critical", "latency_threshold_ms"}
_FIELDS = {
    HTTP: _COMMON_FIELDS | {"url", "expected_status"},
    TCP: _COMMON_FIELDS | {"host", "port"},
}


@dataclass(frozen=True)
class HttpCheckDefinition:
    """GET ``url``; ``expected_status`` is healthy."""

    name: str
    url: str
    expected_status: int = 200
    timeout: float = DEFAULT_TIMEOUT
    critical: bool = False
    latency_threshold_ms: float | None = None

    type = HTTP


@dataclass(frozen=True)
class TcpCheckDefinition:
    """Open a TCP connection to ``host:port`` and close it."""

    name: str
    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT
    critical: bool = False
    latency_threshold_ms: float | None = None

    type = TCP


CheckDefinition = HttpCheckDefinition | TcpCheckDefinition


def check_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a check, or None when it can (shared with register())."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return "must be 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
    return None


def parse_check_definitions(items: list[Any]) -> list[CheckDefinition]:
    """Validate every HEALTH_CHECKS item; ValueError naming the item and field on the first problem."""
    definitions: list[CheckDefinition] = []
    seen: set[str] = set()
    for position, item in enumerate(items, start=1):
        definition = _parse_item(position, item)
        if definition.name in seen:
            raise ValueError(f'item {position} ("{definition.name}"): "name" is used by an earlier item')
        seen.add(definition.name)
        definitions.append(definition)
    return definitions


def _parse_item(position: int, item: Any) -> CheckDefinition:
    where = f"item {position}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a JSON object with name and type")
    name = item.get("name")
    if name is None:
        raise ValueError(f'{where}: "name" is required')
    problem = check_name_problem(name)
    if problem:
        raise ValueError(f'{where}: "name" {problem}')
    where = f'{where} ("{name}")'
    if name in BUILTIN_NAMES:
        raise ValueError(f'{where}: "name" is reserved for the built-in {name} check')
    kind = item.get("type")
    if kind not in CHECK_TYPES:
        raise ValueError(f'{where}: "type" must be "http" or "tcp"')
    unknown = sorted(set(item) - _FIELDS[kind])
    if unknown:
        allowed = ", ".join(sorted(_FIELDS[kind]))
        raise ValueError(f'{where}: unknown field "{unknown[0]}" for type "{kind}" (allowed: {allowed})')
    common = {
        "timeout": _number(item, "timeout", where, DEFAULT_TIMEOUT, maximum=MAX_TIMEOUT),
        "critical": _flag(item, "critical", where),
        "latency_threshold_ms": _number(item, "latency_threshold_ms", where, None),
    }
    if kind == HTTP:
        url = item.get("url")
        if not isinstance(url, str) or not _is_http_url(url):
            raise ValueError(f'{where}: "url" must be an http:// or https:// URL with a host')
        status = _whole(item, "expected_status", where, 200, 100, 599)
        return HttpCheckDefinition(name=name, url=url.strip(), expected_status=status, **common)
    host = item.get("host")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host.strip()):
        raise ValueError(f'{where}: "host" must be a host name or address')
    if "port" not in item:
        raise ValueError(f'{where}: "port" is required')
    port = _whole(item, "port", where, 0, 1, 65535)
    return TcpCheckDefinition(name=name, host=host.strip(), port=port, **common)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # e.g. a port that is not a number
        return False


def _number(item: dict[str, Any], field: str, where: str, default: float | None, maximum: float | None = None) -> Any:
    if field not in item or item[field] is None:
        return default
    value = item[field]
    upper = f" and at most {maximum:g}" if maximum else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f'{where}: "{field}" must be a number above 0{upper}')
    if maximum is not None and value > maximum:
        raise ValueError(f'{where}: "{field}" must be a number above 0{upper}')
    return float(value)


def _whole(item: dict[str, Any], field: str, where: str, default: int, low: int, high: int) -> int:
    if field not in item:
        return default
    value = item[field]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f'{where}: "{field}" must be a whole number from {low} to {high}')
    return value


def _flag(item: dict[str, Any], field: str, where: str) -> bool:
    value = item.get(field, False)
    if not isinstance(value, bool):
        raise ValueError(f'{where}: "{field}" must be true or false')
    return value
