"""Custom health checks registered by the host app: ``centinela.health.register(name, fn, critical=...)``.

Standard library only (the package's ``__init__`` imports it, and config.py imports the package).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitoring.health.definitions import BUILTIN_NAMES, DEFAULT_TIMEOUT, MAX_TIMEOUT, check_name_problem


@dataclass(frozen=True)
class CustomCheck:
    """``fn()`` returns True / None (healthy), False (unhealthy) or a status name; raising is unhealthy."""

    name: str
    fn: Callable[[], Any] = field(repr=False, compare=False)
    critical: bool = False
    timeout: float = DEFAULT_TIMEOUT
    latency_threshold_ms: float | None = None


def custom_check(
    name: str,
    fn: Callable[[], Any],
    *,
    critical: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    latency_threshold_ms: float | None = None,
) -> CustomCheck:
    """Validate a registration; ValueError / TypeError saying what is wrong."""
    problem = check_name_problem(name)
    if problem:
        raise ValueError(f"health check name {name!r} {problem}")
    if name in BUILTIN_NAMES:
        raise ValueError(f"health check name {name!r} is reserved for the built-in check")
    if not callable(fn):
        raise TypeError(f"health check {name!r}: fn must be callable")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"health check {name!r}: timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds")
    if latency_threshold_ms is not None and not (
        isinstance(latency_threshold_ms, (int, float)) and 0 < latency_threshold_ms < float("inf")
    ):
        raise ValueError(f"health check {name!r}: latency_threshold_ms must be a positive number")
    return CustomCheck(name, fn, bool(critical), float(timeout), latency_threshold_ms)


class CustomChecks:
    """A thread-safe set of custom checks by name."""

    def __init__(self) -> None:
        self._checks: dict[str, CustomCheck] = {}
        self._lock = threading.Lock()

    def add(self, check: CustomCheck) -> None:
        with self._lock:
            if check.name in self._checks:
                raise ValueError(f"a health check named {check.name!r} is already registered")
            self._checks[check.name] = check

    def remove(self, name: str) -> bool:
        with self._lock:
            return self._checks.pop(name, None) is not None

    def all(self) -> list[CustomCheck]:
        with self._lock:
            return list(self._checks.values())

    def names(self) -> set[str]:
        with self._lock:
            return set(self._checks)

