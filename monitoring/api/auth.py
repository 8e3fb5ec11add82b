"""Key checks for views: 401 for a missing or wrong key, 403 for a key without the role.

403 is a read key on an admin action, or the ingest key anywhere but the endpoints that take
telemetry: it reads no figure, alert or dashboard.

Every refusal is written to the audit log with the anonymised client address.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from monitoring.api.errors import ApiError
from monitoring.extension import current_monitoring
from monitoring.security.audit import ACCESS_DENIED
from monitoring.security.keys import ADMIN, INGEST, METRICS, ApiKey
from monitoring.security.pii import anonymise_ip

F = TypeVar("F", bound=Callable[..., Any])


def presented_key() -> str | None:
    """The key the client sent: X-Admin-Key, X-API-Key, or (for compatibility) ?api_key=."""
    return (
        request.headers.get("X-Admin-Key")
        or request.headers.get("X-API-Key")
        or request.args.get("api_key")
        or None
    )


def client_ip() -> str:
    """The caller's address, anonymised (ProxyFix has already applied TRUSTED_PROXIES)."""
    return anonymise_ip(request.remote_addr or "")


def optional_key() -> ApiKey | None:
    """The key presented, if any and valid; no refusal recorded (for views that show more with a key)."""
    presented = presented_key()
    return current_monitoring().keyring.identify(presented) if presented else None


_FORBIDDEN_MESSAGES = {
    ADMIN: "this action needs the admin key (X-Admin-Key)",
    METRICS: "this needs the read key (METRICS_API_KEY) or the admin key",
    INGEST: "this endpoint takes the ingest key (INGEST_API_KEY)",
}


def check_key(role: str, *also: str, presented: str | None | bool = False) -> ApiKey:
    """The presented key if it grants ``role`` (or one of ``also``); otherwise audit the refusal and raise 401/403.

    ``presented`` is the key when the view found it elsewhere (an ingest protocol's header);
    by default it is read from X-Admin-Key, X-API-Key or ``?api_key=``.
    """
    monitoring = current_monitoring()
    if presented is False:
        presented = presented_key()
    key = monitoring.keyring.identify(presented) if presented else None  # type: ignore[arg-type]
    if key is None:
        reason = "missing_key" if not presented else "wrong_key"
        _refuse(reason, role)
        message = "an API key is required" if not presented else "the API key is not valid"
        raise ApiError(401, f"{message}: send it in the X-API-Key header", "unauthorized")
    if not any(key.grants(wanted) for wanted in (role, *also)):
        _refuse("insufficient_role", role, actor=key.key_id)
        message = _FORBIDDEN_MESSAGES[role]
        if key.role == INGEST:
            message += "; the ingest key only sends telemetry"
        raise ApiError(403, message, "forbidden")
    g.api_key = key
    return key


def _refuse(reason: str, needed: str, actor: str = "anonymous") -> None:
    current_monitoring().audit.record(
        ACCESS_DENIED,
        actor,
        f"{request.method} {request.path}",
        client_ip=client_ip(),
        path=request.path,
        detail={"reason": reason, "needed": needed},
    )


def require_key_unless_public() -> None:
    """The read key for details that DASHBOARD_PUBLIC leaves private (on a host app, by default)."""
    if not current_monitoring().public:
        check_key(METRICS)


def require_key(role: str, *also: str) -> Callable[[F], F]:
    """View decorator: the view runs only for a key that grants ``role`` (or one of ``also``)."""
    if role not in (METRICS, ADMIN, INGEST) or not set(also) <= {METRICS, ADMIN, INGEST}:
        raise ValueError(role)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            check_key(role, *also)
            return view(*args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]  # read by the OpenAPI test
        return wrapped  # type: ignore[return-value]

    return decorate
