"""A festival's ticket shop with Centinela embedded (``Monitoring(app)``), for tests that need a
monitored app under a real gunicorn: ``gunicorn -c gunicorn.conf.py tests.support.festival:app``.

Its routes are what the shop's story needs: a checkout that fails when asked (an error
spike), a page that answers slowly when asked (slow responses), and a ticket list that is
always fine. Configuration comes from the environment, as for the service itself.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Flask, abort, request

from monitoring.extension import Monitoring

MAX_DELAY_MS = 10_000


def create_festival() -> Flask:
    app = Flask("festival")

    @app.get("/checkout")
    def checkout() -> Any:
        if request.args.get("fail"):
            abort(500)  # the payment provider is failing
        return {"paid": True}

    @app.get("/tickets")
    def tickets() -> Any:
        delay_ms = min(int(request.args.get("delay_ms", "0") or 0), MAX_DELAY_MS)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)  # a slow query, in the monitored app's own request
        return {"tickets": []}

    Monitoring(app)
    return app


app = create_festival()
