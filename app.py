"""The Centinela service: ``create_app()`` builds the Flask app (gunicorn loads it from wsgi.py)."""
from __future__ import annotations

from typing import Any

from flask import Flask

from config import Settings
from monitoring.clock import Clock
from monitoring.extension import Monitoring


def create_app(config: Settings | dict[str, Any] | None = None, clock: Clock | None = None) -> Flask:
    """Build the app. ``config`` is a Settings, a dict of overrides on top of the environment, or None."""
    if isinstance(config, dict):
        settings = Settings.from_env(**config)
    else:
        settings = config or Settings.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep documents in their written order
    Monitoring(app, settings=settings, clock=clock)

    return app
