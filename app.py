"""The Centinela service: ``create_app()`` builds the Flask app (gunicorn loads it from wsgi.py).

The service is Centinela embedded in an app of its own, with the choices a host app would
not want made for it: JSON errors and MAX_BODY_BYTES for every path (not only Centinela's
routes), the client address from TRUSTED_PROXIES hops of X-Forwarded-For, public pages by
default, and ``/`` sending visitors to the dashboard.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, redirect, url_for
from werkzeug.wrappers import Response

from config import service_settings
from monitoring.api.contract import PUBLIC, endpoint
from monitoring.api.errors import register_error_handlers
from monitoring.clock import Clock
from monitoring.extension import Monitoring
from monitoring.settings import Settings


def create_app(config: Settings | dict[str, Any] | None = None, clock: Clock | None = None) -> Flask:
    """Build the app. ``config`` is a Settings, a dict of overrides on top of the environment, or None."""
    settings = service_settings(**config) if isinstance(config, dict) else (config or service_settings())
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documents in their written order
    register_error_handlers(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies
        )
    Monitoring(app, settings=settings, clock=clock, standalone=True)

    @app.get("/")
    @endpoint(key=PUBLIC, responses={302: None}, tags=["dashboard"],
              descriptions={302: "To the dashboard page (the service only; an app that embeds Centinela keeps its own /)."})
    def dashboard_root() -> Response:
        """The service's front door"""
        response = redirect(url_for("centinela_dashboard.dashboard", format="html"), 302)
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
