"""Health checks with circuit breakers. What a host app calls:

    import monitoring.health

    # a custom check, run by the leader in every round beside the configured ones
    monitoring.health.register("search", lambda: search_client.ping(), critical=False)

    # guard your own calls with the same breaker the health check moves
    with monitoring.health.breaker("stripe"):
        stripe.PaymentIntent.create(...)   # CircuitOpenError while the breaker is open

Both work on the app created in this process (``Monitoring(app)``); a check registered
before the app exists is picked up when it is created. This module stays light (config.py
imports the package for HEALTH_CHECKS): the heavy parts load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from monitoring.health.definitions import DEFAULT_TIMEOUT
from monitoring.health.registry import PROCESS_CHECKS, custom_check

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from monitoring.health.circuit import Permit
    from monitoring.health.service import HealthService

_active: "HealthService | None" = None


def activate(service: "HealthService") -> None:
    """Make ``service`` the one the module-level functions use (called by the health blueprint's install)."""
    global _active
    _active = service


def current_service() -> "HealthService":
    if _active is None:
        raise RuntimeError("no Centinela app in this process yet: create it (Monitoring(app)) first")
    return _active


def register(
    name: str,
    fn: Callable[[], Any],
    *,
    critical: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    latency_threshold_ms: float | None = None,
) -> None:
    """Add a custom check: ``fn()`` returns True/None (healthy), False, or "degraded"/"unhealthy"; raising is unhealthy."""
    check = custom_check(name, fn, critical=critical, timeout=timeout, latency_threshold_ms=latency_threshold_ms)
    if _active is not None:
        _active.ensure_name_free(name)
    PROCESS_CHECKS.add(check)


def unregister(name: str) -> bool:
    return PROCESS_CHECKS.remove(name)


def breaker(name: str, ignore: tuple[type[BaseException], ...] = ()) -> "AbstractContextManager[Permit]":
    """``with monitoring.health.breaker("stripe"): ...``: the dependency's shared circuit breaker.

    Raises CircuitOpenError while open (or while another caller holds the half-open trial).
    An exception from the block counts as a failure unless its type is in ``ignore``.
    """
    return current_service().breaker(name, ignore)


def __getattr__(name: str) -> Any:
    if name == "CircuitOpenError":
        from monitoring.health.circuit import CircuitOpenError

        return CircuitOpenError
    if name == "HealthService":
        from monitoring.health.service import HealthService

        return HealthService
    raise AttributeError(name)
