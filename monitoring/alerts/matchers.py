"""Label matchers in Alertmanager's syntax: ``service="api"``, ``route!="/health"``,
``alertname=~"HighErrorRate|SlowApiResponse"``, ``host!~"canary-.*"``.

Rules select the label sets of their figure with them, silences and inhibition rules pick
alerts with them. As in Prometheus, a missing label reads as the empty string and regular
expressions are anchored at both ends.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EQUAL, NOT_EQUAL, MATCHES, NOT_MATCHES = "=", "!=", "=~", "!~"
OPERATORS = (EQUAL, NOT_EQUAL, MATCHES, NOT_MATCHES)
MAX_MATCHERS = 20
MAX_VALUE_LENGTH = 200

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
EXAMPLE = 'a matcher such as service="api" or alertname=~"HighErrorRate|SlowApiResponse"'


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in (MATCHES, NOT_MATCHES) and self._pattern is None:
            object.__setattr__(self, "_pattern", re.compile(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == EQUAL:
            return actual == self.value
        if self.op == NOT_EQUAL:
            return actual != self.value
        assert self._pattern is not None
        found = self._pattern.fullmatch(actual) is not None
        return found if self.op == MATCHES else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """One matcher from its text; ValueError saying what is expected."""
    match = _MATCHER.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"expected {EXAMPLE}")
    label, op, raw = match.groups()
    value = re.sub(r"\\(.)", r"\1", raw)
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"a matcher's value may have at most {MAX_VALUE_LENGTH} characters")
    try:
        return Matcher(label, op, value)
    except re.error as exc:
        raise ValueError(f"{label}{op}: not a valid regular expression ({exc})") from None


def parse_matchers(raw: Any, *, required: bool = False) -> tuple[Matcher, ...]:
    """A JSON list of matcher strings; ValueError naming the bad item."""
    if raw is None:
        raw = []
    if not isinstance(raw, list) or len(raw) > MAX_MATCHERS:
        raise ValueError(f"must be a list of up to {MAX_MATCHERS} matchers, each {EXAMPLE}")
    if required and not raw:
        raise ValueError(f"needs at least one matcher, {EXAMPLE}")
    matchers = []
    for index, item in enumerate(raw):
        try:
            matchers.append(parse_matcher(item))
        except ValueError as exc:
            raise ValueError(f"item {index}: {exc}") from None
    return tuple(matchers)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def to_json(matchers: tuple[Matcher, ...]) -> list[str]:
    return [str(m) for m in matchers]
