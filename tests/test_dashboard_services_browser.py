"""The dashboard's service picker in a real browser (Chromium via Playwright) against a real gunicorn:
hidden while the store knows one service, offered once a second one has requests, and the request
figures follow the choice."""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from monitoring.clock import SystemClock
from monitoring.metrics.recorder import RequestRecorder
from monitoring.metrics.rollups import RequestRollups, flush_recorder
from monitoring.store.database import Store
from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.gunicorn import GunicornServer
from tests.test_dashboard_browser import CHROMIUM, PAGE, Watched, kpi_number, open_dashboard, sign_in, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium; "
                                                      ".ci/run installs it)"),
]
HEADERS = {"X-API-Key": METRICS_KEY}


@pytest.fixture
def server(tmp_path: Any) -> Iterator[GunicornServer]:
    gunicorn = GunicornServer(tmp_path / "picker", env={
        "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "METRICS_FLUSH_INTERVAL": "0.5",
        "DASHBOARD_REFRESH_SECONDS": "1", "RATELIMIT_DEFAULT": "100000/minute",
    }, workers=1)
    gunicorn.start()
    try:
        yield gunicorn
    finally:
        gunicorn.stop()


@pytest.fixture
def watched(server: GunicornServer) -> Iterator[Watched]:
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard_browser import CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield Watched(context, server.url)
        context.close()
        browser.close()


def performance(server: GunicornServer, service: str = "") -> dict[str, Any]:
    query = f"&service={service}" if service else ""
    return requests.get(f"{server.url}/api/monitoring/metrics?category=performance&window=1h{query}",
                        headers=HEADERS, timeout=5).json()["performance"]


def test_the_picker_appears_with_a_second_service_and_the_figures_follow_it(
    watched: Watched, server: GunicornServer
) -> None:
    with requests.Session() as session:
        for i in range(12):
            assert session.get(f"{server.url}/tickets/{i}", timeout=5).status_code == 404  # service "app"
    deadline = time.monotonic() + 15
    while performance(server)["requests.count"] < 12:
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.2)

    page = watched.page
    open_dashboard(watched, server)
    sign_in(page, METRICS_KEY)
    page.wait_for_selector("#performance:not([hidden]) #kpi-requests")
    assert page.is_hidden("#app-service")  # one service: nothing to pick

    # A second service's requests reach the same store (as an ingested app's would).
    store = Store(server.env["DATABASE_URL"])
    recorder = RequestRecorder(SystemClock())
    for _ in range(5):
        recorder.record("GET", "/cart", 200, 0.02, service="shop")
    flush_recorder(recorder, RequestRollups(store, SystemClock()))
    store.dispose()

    page.wait_for_selector("#app-service:not([hidden]) #service-picker")
    options = page.eval_on_selector_all("#service-picker option", "nodes => nodes.map(n => [n.value, n.textContent])")
    assert options == [["", "every service"], ["app", "app"], ["shop", "shop"]]
    wait_until(page, "Number(document.querySelector('#kpi-requests .kpi-value').textContent"
                     ".replace(/[^0-9]/g, '')) >= 17")

    with page.expect_response(lambda r: "/dashboard/data?service=shop" in r.url) as feed:
        page.select_option("#service-picker", "shop")
    assert feed.value.json()["appServices"]["selected"] == "shop"
    wait_until(page, "Number(document.querySelector('#kpi-requests .kpi-value').textContent"
                     ".replace(/[^0-9]/g, '')) === 5")
    assert kpi_number(page, "kpi-requests") == performance(server, "shop")["requests.count"] == 5
    assert page.input_value("#service-picker") == "shop"

    page.select_option("#service-picker", "")
    wait_until(page, "Number(document.querySelector('#kpi-requests .kpi-value').textContent"
                     ".replace(/[^0-9]/g, '')) >= 17")
    assert page.url == server.url + PAGE  # the choice is the page's, not a navigation
    watched.assert_clean()
