"""Make docs/dashboard.png: the HTML dashboard of a real gunicorn, with a day of history, in Chromium.

Run from the repo root:  .venv/bin/python bench/dashboard_screenshot.py [--out docs/dashboard.png]

The history goes into a fresh SQLite store through the real write paths before gunicorn starts:
request samples through the recorder and its flush (a driven clock walks the last 24 hours),
payments, tickets and user activity through the events recorder with their timestamps. Then
`make run`'s gunicorn serves that store with a local stand-in for Stripe, a medium alert is
raised through the alerts API, and Playwright signs in through the page's form and takes the
picture. Needs /usr/bin/chromium (Debian package chromium).
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from app import create_app  # noqa: E402
from monitoring import business  # noqa: E402
from monitoring.clock import ManualClock  # noqa: E402
from monitoring.metrics.recorder import RequestRecorder  # noqa: E402
from monitoring.metrics.rollups import RequestRollups, flush_recorder  # noqa: E402
from monitoring.settings import Settings  # noqa: E402
from tests.support.gunicorn import GunicornServer  # noqa: E402
from tests.support.receiver import RecordingHTTPServer  # noqa: E402

METRICS_KEY = "screenshot-metrics-key-0123456789"
ADMIN_KEY = "screenshot-admin-key-0123456789"
ROUTES = (("GET", "/events/<slug>", 0.035), ("GET", "/tickets/<order_id>", 0.060), ("POST", "/checkout", 0.240),
          ("POST", "/webhooks/stripe", 0.080))


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def seed(var_dir: Path, now: float) -> None:
    """A day of a festival shop: busier in the evening, a slow spell an hour ago, a few failed payments."""
    settings = Settings.from_env({"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY,
                                  "VAR_DIR": str(var_dir), "SCHEDULER_ENABLED": "false"})
    clock = ManualClock(now)
    app = create_app(settings, clock=clock)
    monitoring = app.extensions["centinela"]
    rollups = RequestRollups(monitoring.store, clock)
    recorder = RequestRecorder(clock)
    rng = random.Random(2026)
    first_minute = math.floor(now / 60) * 60 - 24 * 3600
    events = []
    for minute in range(24 * 60):
        at = first_minute + minute * 60
        clock.set(at + 1)
        hour_of_day = datetime.fromtimestamp(at, tz=UTC).hour
        load = 0.35 + 0.65 * math.sin(math.pi * ((hour_of_day + 6) % 24) / 24) ** 2
        slow = 1.8 if 50 <= (now - at) / 60 <= 58 else 1.0
        for method, route, typical in ROUTES:
            for _ in range(int(rng.uniform(8, 14) * load)):
                status = 500 if rng.random() < 0.004 * slow else (404 if rng.random() < 0.01 else 200)
                recorder.record(method, route, status, rng.lognormvariate(math.log(typical * slow), 0.45))
        if minute % 10 == 9:
            flush_recorder(recorder, rollups)
        for _ in range(int(rng.uniform(0, 7) * load)):
            events.append({"type": "payment", "outcome": "failed" if rng.random() < 0.03 else "succeeded",
                           "amount": rng.choice((4500, 8900, 12900, 18900)), "currency": "EUR",
                           "provider": "stripe", "timestamp": stamp(at + rng.uniform(0, 59))})
            events.append({"type": "ticket", "operation": "purchased", "quantity": rng.randint(1, 4),
                           "timestamp": stamp(at + rng.uniform(0, 59))})
            events.append({"type": "user_activity", "user_id": f"u-{rng.randint(1, 900)}", "action": "checkout",
                           "timestamp": stamp(at + rng.uniform(0, 59))})
    flush_recorder(recorder, rollups)
    clock.set(now)
    events_recorder = business.recorder_for(monitoring)
    for i in range(0, len(events), 500):
        events_recorder.record_raw(events[i:i + 500])
    monitoring.shutdown()
    monitoring.store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work, RecordingHTTPServer() as stripe:
        server = GunicornServer(Path(work), env={
            "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "STRIPE_SECRET_KEY": "sk_test_screenshot",
            "STRIPE_API_BASE": stripe.url, "HEALTH_CHECK_INTERVAL": "2", "METRICS_FLUSH_INTERVAL": "1",
            "SYSTEM_SAMPLE_INTERVAL": "2"}, workers=2)
        seed(Path(work) / "var", time.time())
        server.start()
        try:
            requests.post(f"{server.url}/api/monitoring/alerts", headers={"X-Admin-Key": ADMIN_KEY}, timeout=10, json={
                "action": "trigger", "severity": "medium", "service": "brevo",
                "description": "Confirmation e-mails queue for longer than 5 minutes"}).raise_for_status()
            time.sleep(4)  # a few health rounds, so that uptime has some known time
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync"])
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{server.url}/api/monitoring/dashboard?format=html")
                page.fill("#signin-key", METRICS_KEY)
                with page.expect_navigation():
                    page.click("#signin button[type=submit]")
                page.wait_for_selector("#business:not([hidden]) #kpi-revenue")
                page.wait_for_timeout(1500)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, full_page=True)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
