"""The guards every Centinela blueprint carries, and only Centinela's blueprints.

``centinela_blueprint(...)`` makes a Blueprint whose requests get, before the view:

* the body limit (MAX_BODY_BYTES) for this request only (``request.max_content_length``), so a
  host app's own upload routes keep whatever limit the host chose;
* its rate-limit budgets (``monitoring.security.rate_limits``), 429 with Retry-After when spent;

and after it: the X-RateLimit-* headers, CORS headers when CORS_ORIGINS is set (flask-cors'
own header logic, applied here rather than app-wide), and the one JSON error shape for
everything raised in its views. Nothing is registered on the app itself: a host's error
pages, body limit, hooks and limiter stay the host's (the service opts in to app-wide JSON
errors in ``create_app``).
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from monitoring.api.errors import (
    ApiError,
    api_error_response,
    http_exception_response,
    register_store_unavailable_handler,
    unhandled_response,
)
from monitoring.extension import current_monitoring
from monitoring.security.rate_limits import Verdict

IdentityFunc = Callable[[], str]

_VERDICT = "centinela_rate_limit"


def client_address() -> str:
    """The caller's address (TRUSTED_PROXIES already applied by the service's ProxyFix)."""
    return request.remote_addr or "unknown"


def api_key_or_address() -> str:
    """Per-key limits for keyed endpoints (a shared office IP does not starve another team's key);
    requests without a valid key are counted per address, so random keys buy no fresh budget."""
    from monitoring.api.auth import optional_key

    key = optional_key()
    return key.key_id if key is not None else client_address()


BY_ADDRESS: tuple[str, IdentityFunc] = ("default", client_address)


def centinela_blueprint(
    name: str,
    import_name: str,
    url_prefix: str,
    *,
    budgets: Sequence[tuple[str, IdentityFunc]] = (BY_ADDRESS,),
    body_limit: Callable[[Any], int] | None = None,
    **options: Any,
) -> Blueprint:
    """A Blueprint with Centinela's guards; ``budgets`` are (budget name, identity) pairs counted per request.

    ``body_limit(settings)`` replaces MAX_BODY_BYTES for endpoints whose protocol sets its own
    (OTLP: 64 MiB; Sentry envelopes: 40 MiB as sent).
    """
    bp = Blueprint(name, import_name, url_prefix=url_prefix, **options)
    limits = tuple(budgets)

    @bp.before_request
    def _guard() -> None:
        monitoring = current_monitoring()
        limit = body_limit(monitoring.settings) if body_limit is not None else monitoring.settings.max_body_bytes
        # One byte more than the limit may be read: Werkzeug stops a chunked body at the limit
        # without a word, so reading limit + 1 is how read_body() tells "too large" from "just fits".
        request.max_content_length = limit + 1
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        _rate_limit(monitoring, limits)

    @bp.after_request
    def _headers(response: Response) -> Response:
        if not (request.endpoint or "").endswith(".static"):
            # Figures, keyed answers and the health document must never be kept by a shared cache
            # (served stale, or to someone without the key); what a key or a cookie changes, says so.
            response.headers.setdefault("Cache-Control", "no-store")
            response.vary.update(("X-API-Key", "X-Admin-Key"))
        verdict: Verdict | None = g.pop(_VERDICT, None)
        if verdict is not None:
            response.headers["X-RateLimit-Limit"] = str(verdict.limit)
            response.headers["X-RateLimit-Remaining"] = str(max(0, verdict.remaining))
            response.headers["X-RateLimit-Reset"] = str(int(verdict.reset_at))
        cors = current_monitoring().cors_options
        if cors is not None:
            from flask_cors.core import set_cors_headers

            set_cors_headers(response, cors)
        return response

    bp.register_error_handler(ApiError, api_error_response)
    bp.register_error_handler(HTTPException, http_exception_response)
    register_store_unavailable_handler(bp)  # 503 store_unavailable while the store does not answer
    bp.register_error_handler(Exception, unhandled_response)
    return bp


class LazyView:
    """The view ``name`` of module ``module``, imported on its first request (Flask's "lazily loading
    views" pattern): a host worker that never serves this route never loads its module and models.

    Only ``__call__`` reaches the view: Flask reads ``methods`` and ``provide_automatic_options``
    off a view function when a rule is added, and must not import the module to find them absent.
    """

    __slots__ = ("_view", "module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._view: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The view function itself (imports its module the first time; the import lock makes
        threads that race here wait for one import)."""
        view = self._view
        if view is None:
            view = self._view = getattr(importlib.import_module(self.module), self.name)
        return view

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        view = self._view or self.resolve()
        return view(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<LazyView {self.module}:{self.name}>"


def _rate_limit(monitoring: Any, limits: Sequence[tuple[str, IdentityFunc]]) -> None:
    rate_limits = monitoring.services.limits
    if not rate_limits.enabled:
        return
    tightest: Verdict | None = None
    for budget_name, identity in limits:
        verdict = rate_limits.hit(rate_limits.budgets[budget_name], identity())
        if verdict is None:
            continue
        if not verdict.allowed:
            g.setdefault(_VERDICT, verdict)
            raise ApiError(
                429,
                f"rate limit exceeded ({verdict.description}); retry after the time in Retry-After",
                "rate_limited",
                # The counters' windows run on the wall clock, whatever clock the app was given.
                headers={"Retry-After": str(verdict.retry_after(time.time()))},
            )
        if tightest is None or verdict.remaining < tightest.remaining:
            tightest = verdict
    if tightest is not None:
        g.setdefault(_VERDICT, tightest)
