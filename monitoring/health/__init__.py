"""Health checks with circuit breakers. What a host app calls, on its own Centinela
(``centinela = Monitoring(app)``)::

    # a custom check, run by the leader in every round beside the configured ones
    centinela.health.register("search", lambda: search_client.ping(), critical=False)

    # guard your own calls with the same breaker the health check moves
    with centinela.breaker("stripe"):
        stripe.PaymentIntent.create(...)   # CircuitOpenError while the breaker is open

Each app has its own HealthService (built by ``monitoring.services``): two apps in one
process keep their own checks and breakers. This module stays light: the heavy parts load
on first use.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "CircuitOpenError":
        from monitoring.health.circuit import CircuitOpenError

        return CircuitOpenError
    if name == "HealthService":
        from monitoring.health.service import HealthService

        return HealthService
    raise AttributeError(name)
