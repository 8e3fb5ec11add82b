"""Rate limits (flask-limiter) on every endpoint, with storage from RATELIMIT_STORAGE_URI.

In-memory storage counts per process: with WORKERS=3 a client gets three times the limit.
Point RATELIMIT_STORAGE_URI at Redis to share one count across workers and hosts.
"""
from __future__ import annotations

from flask import Flask, Response, request
from flask_limiter import Limiter

from config import Settings


def client_address() -> str:
    # ProxyFix (TRUSTED_PROXIES) has already replaced remote_addr with the forwarded client.
    return request.remote_addr or "unknown"


def api_key_or_address() -> str:
    """Per-key limits for keyed endpoints (a shared office IP does not starve another team's key);
    requests without a valid key are counted per address, so random keys buy no fresh budget."""
    from monitoring.api.auth import optional_key

    key = optional_key()
    return key.key_id if key is not None else client_address()


def init_rate_limits(app: Flask, settings: Settings, blueprints: frozenset[str]) -> Limiter:
    """Limits for Centinela's own ``blueprints``; a host app's routes are its own business."""

    def host_route() -> bool:
        return request.blueprint not in blueprints

    limiter = Limiter(
        client_address,
        default_limits=[settings.ratelimit_default],
        default_limits_exempt_when=host_route,
        storage_uri=settings.ratelimit_storage_uri,
        headers_enabled=True,
        enabled=settings.ratelimit_enabled,
        key_prefix=app.config.get("RATELIMIT_KEY_PREFIX", "centinela"),
        # Fail open on a storage outage: a Redis blip must not take monitoring down with it.
        swallow_errors=True,
    )
    # Registered before the limiter's own hook, so it runs after it (Flask runs after_request
    # hooks last-registered first): the limiter puts Retry-After on every response, but on a
    # 200 a load balancer or client could read it as "come back later".
    app.after_request(_retry_after_only_when_refused)
    limiter.init_app(app)
    return limiter


def _retry_after_only_when_refused(response: Response) -> Response:
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response
