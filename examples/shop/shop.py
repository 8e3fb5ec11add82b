"""A small ticket shop that embeds Centinela: ``gunicorn --preload -w 2 shop:app``.

What it shows: the one import, ``Monitoring(app)``; a Stripe call guarded by the shared circuit
breaker; a business event; an unhandled exception that error tracking captures; and that the
shop keeps its own config.py, error pages and upload limit.
"""
from __future__ import annotations

import requests
from flask import Flask, jsonify, render_template, request

from monitoring import Monitoring
from monitoring.health import CircuitOpenError


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_object("config")
    centinela = Monitoring(app)

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> object:
        return jsonify({"ticket": ticket_id, "available": ticket_id % 7 != 0})

    @app.post("/checkout")
    def checkout() -> object:
        amount = int(request.form.get("amount", "4500"))
        try:
            with centinela.breaker("stripe"):
                charged = _charge(app, amount)
        except CircuitOpenError:
            return jsonify({"error": "payments are paused, try again in a minute"}), 503
        except requests.RequestException:
            centinela.business.record_payment("failed", amount, "EUR", provider="stripe", failure_code="unreachable")
            return jsonify({"error": "payment failed"}), 502
        centinela.business.record_payment("succeeded", amount, "EUR", provider="stripe")
        centinela.business.record_ticket("purchased", ticket_type="day-pass")
        return jsonify({"charged": charged})

    @app.post("/upload")
    def upload() -> object:
        return jsonify({"received": len(request.get_data())})

    @app.get("/boom")
    def boom() -> object:
        raise RuntimeError("the shop's own bug")

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return render_template("404.html"), 404

    @app.errorhandler(500)
    def server_error(error: Exception) -> tuple[str, int]:
        return render_template("500.html"), 500

    return app


def _charge(app: Flask, amount: int) -> int:
    if not app.config["STRIPE_SECRET_KEY"]:
        return amount  # no Stripe account configured: the example pretends the charge went through
    response = requests.post(
        f"{app.config['STRIPE_API_BASE']}/v1/payment_intents",
        data={"amount": amount, "currency": "eur"},
        auth=(app.config["STRIPE_SECRET_KEY"], ""),
        timeout=5,
    )
    response.raise_for_status()
    return amount


app = create_app()
