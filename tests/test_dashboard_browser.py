"""The HTML dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
gunicorn with real traffic: it loads cleanly and offline-ready, shows health and uptime to anyone,
shows every figure after signing in through its form, updates in place, and fits a phone.

Screenshots go to test-artifacts/ (git-ignored); docs/dashboard.png is one of them.
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.gunicorn import PROJECT_ROOT, GunicornServer
from tests.support.receiver import RecordingHTTPServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
PAGE = "/api/monitoring/dashboard?format=html"
HEADERS = {"X-API-Key": METRICS_KEY}
REFRESH_SECONDS = 1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package chromium; "
                                                      ".ci/run installs it)"),
]


@pytest.fixture(scope="module")
def stripe() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stripe: RecordingHTTPServer) -> Iterator[GunicornServer]:
    """`make run`'s gunicorn, 2 workers, with a Stripe dependency (a local server) and short intervals."""
    gunicorn = GunicornServer(
        tmp_path_factory.mktemp("dashboard"),
        env={
            "METRICS_API_KEY": METRICS_KEY,
            "ADMIN_API_KEY": ADMIN_KEY,
            "STRIPE_SECRET_KEY": "sk_test_browser0123456789abcdef",
            "STRIPE_API_BASE": stripe.url,
            "METRICS_FLUSH_INTERVAL": "0.5",
            "HEALTH_CHECK_INTERVAL": "1",
            "SYSTEM_SAMPLE_INTERVAL": "1",
            "DASHBOARD_REFRESH_SECONDS": str(REFRESH_SECONDS),
            "RATELIMIT_DEFAULT": "100000/minute",
            "RATELIMIT_EXPORT": "100000/minute",
        },
        workers=2,
    )
    gunicorn.start()
    try:  # stopped even when the set-up below fails, or its processes would outlive the test run
        traffic(gunicorn, 60)
        pay(gunicorn, [("succeeded", 80000), ("succeeded", 7654), ("failed", 1500)])
        wait_for_requests(gunicorn, 60)
        yield gunicorn
    finally:
        gunicorn.stop()


def traffic(server: GunicornServer, count: int) -> None:
    """Shoppers on ticket pages the service does not have (404s under <unmatched>): the monitored app's traffic."""
    with requests.Session() as session:
        for i in range(count):
            assert session.get(f"{server.url}/tickets/{i}?ref=mail", timeout=5).status_code == 404


def pay(server: GunicornServer, payments: list[tuple[str, int]]) -> None:
    events = [{"type": "payment", "outcome": outcome, "amount": amount, "currency": "GBP", "provider": "stripe"}
              for outcome, amount in payments]
    events += [{"type": "ticket", "operation": "purchased", "quantity": 2},
               {"type": "user_activity", "user_id": "u-42", "action": "checkout"}]
    response = requests.post(f"{server.url}/api/monitoring/events", json={"events": events}, headers=HEADERS, timeout=5)
    assert response.status_code == 201, response.text


def requests_counted(server: GunicornServer) -> int:
    body = requests.get(f"{server.url}/api/monitoring/metrics?category=performance&window=1h", headers=HEADERS,
                        timeout=5).json()
    return int(body["performance"]["requests.count"])


def wait_for_requests(server: GunicornServer, at_least: int, timeout: float = 15.0) -> int:
    """Real workers flush on their own timers: poll the store's figure until it shows the traffic."""
    deadline = time.monotonic() + timeout
    while (counted := requests_counted(server)) < at_least:
        assert time.monotonic() < deadline, f"only {counted} of {at_least} requests flushed:\n{server.log()[-3000:]}"
        time.sleep(0.2)
    return counted


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A page and everything that went wrong on it: console errors, failed or refused requests, other hosts."""

    def __init__(self, context: Any, base_url: str) -> None:
        self.context = context
        self.page = context.new_page()
        self.base_url = base_url
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.bad_status: list[str] = []
        self.foreign: list[str] = []
        self.navigations = 0
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("response", lambda r: self.bad_status.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("framenavigated", lambda f: self._navigated(f))

        def only_this_site(route: Any) -> None:
            if route.request.url.startswith(base_url) or route.request.url.startswith("data:"):
                route.continue_()
            else:  # the page must work with no internet: nothing may come from anywhere else
                self.foreign.append(route.request.url)
                route.abort()

        context.route("**/*", only_this_site)

    def _navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.failed == [], self.failed
        assert self.bad_status == [], self.bad_status
        assert self.foreign == [], self.foreign


@pytest.fixture
def watched(browser: Any, server: GunicornServer) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context, server.url)
    context.close()


def open_dashboard(watched: Watched, server: GunicornServer) -> Any:
    page = watched.page
    with page.expect_response(lambda r: "/api/monitoring/dashboard/data" in r.url) as first_feed:
        page.goto(server.url + PAGE)
    wait_until(page, "document.getElementById('status-word').textContent !== 'Loading'")
    return first_feed.value


def wait_until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Poll a condition in the page. (Playwright's wait_for_function evaluates strings with eval, which the
    page's Content-Security-Policy rightly refuses; page.evaluate is not subject to it.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for: {expression}"
        page.wait_for_timeout(100)


def sign_in(page: Any, key: str) -> Any:
    page.fill("#signin-key", key)
    with page.expect_navigation() as navigation:
        page.click("#signin button[type=submit]")
    return navigation.value


def kpi_number(page: Any, kpi_id: str) -> int:
    return int(re.sub(r"[^0-9]", "", page.inner_text(f"#{kpi_id} .kpi-value")) or "0")


def test_public_page_loads_cleanly_and_shows_health_and_uptime_only(watched: Watched, server: GunicornServer) -> None:
    page = watched.page
    feed = open_dashboard(watched, server)
    assert feed.status == 200 and feed.json()["view"] == "public" and "business" not in feed.json()
    page.wait_for_selector("#services-table-body tr[data-service='stripe']")
    wait_until(page, "document.getElementById('status-word').textContent === 'Healthy'")
    assert page.get_attribute("#banner", "aria-live") == "polite"
    assert "Health score 100 / 100" in page.inner_text("#banner")
    stripe_row = page.inner_text("#services-table-body tr[data-service='stripe']")
    assert "Healthy" in stripe_row and "Closed" in stripe_row and "critical" in stripe_row
    assert "Uptime (30d)" in page.inner_text("#uptime") and "%" in page.inner_text("#kpi-uptime")
    assert "Error budget left" in page.inner_text("#uptime")
    assert page.is_visible("#incidents") and page.is_visible("#restricted") and page.is_visible("#signin")
    for section in ("#business", "#charts", "#performance", "#alerts", "#errors"):
        assert page.is_hidden(section), section
    content = page.content()
    for figure in ("876.54", "£", "GBP", "<unmatched>", "kpi-revenue"):
        assert figure not in content, figure
    assert METRICS_KEY not in content and "api_key" not in page.url
    headings = page.eval_on_selector_all("h1, h2", "nodes => nodes.filter(n => n.offsetParent).map(n => n.textContent)")
    assert headings[:2] == ["Centinela", "Services"]
    watched.assert_clean()


def test_signing_in_shows_real_figures_that_update_in_place(watched: Watched, server: GunicornServer) -> None:
    page = watched.page
    open_dashboard(watched, server)
    landed = sign_in(page, METRICS_KEY)
    assert landed.status == 200 and landed.url == server.url + PAGE  # the key is in no URL
    page.wait_for_selector("#business:not([hidden]) #kpi-revenue")
    assert page.is_hidden("#signin") and "Signed in with the metrics key" in page.inner_text("#signout")
    cookie = next(c for c in watched.context.cookies() if c["name"] == "centinela_dashboard")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and METRICS_KEY not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

    counted = requests_counted(server)
    wait_until(page, f"Number(document.querySelector('#kpi-requests .kpi-value').textContent"
                           f".replace(/[^0-9]/g, '')) >= {counted}")
    assert kpi_number(page, "kpi-requests") >= 60
    assert "£876.54" in page.inner_text("#kpi-revenue")
    assert "66.67 %" in page.inner_text("#kpi-payment-success")
    assert page.locator("#chart-latency svg path.line").count() >= 1
    assert page.locator("#chart-throughput svg rect.bar").count() >= 1
    assert page.locator("#chart-payments svg rect.bar.s-failed").count() == 1
    assert "p95" in page.inner_text("#chart-latency") and "ms" in page.inner_text("#chart-latency")
    alerts = page.inner_text("#alerts")  # the default rules may well fire on a third of payments failing
    assert "No active alert." in alerts or re.search(r"(Critical|High|Medium|Low|Info) .*(Firing|Pending)", alerts)

    # More traffic: the figures change without the page being loaded again.
    page.evaluate("window.__centinelaMarker = 'still here'")
    navigations = watched.navigations
    before = kpi_number(page, "kpi-requests")
    traffic(server, 40)
    pay(server, [("succeeded", 1000)])
    wait_for_requests(server, counted + 40)
    wait_until(page, f"Number(document.querySelector('#kpi-requests .kpi-value').textContent"
                           f".replace(/[^0-9]/g, '')) >= {before + 40}", 15)
    wait_until(page, "document.querySelector('#kpi-revenue').textContent.includes('886.54')", 15)
    assert page.evaluate("window.__centinelaMarker") == "still here"
    assert watched.navigations == navigations
    assert "75.00 %" in page.inner_text("#kpi-payment-success")

    page.click(".range button[data-range='24h']")
    assert page.get_attribute(".range button[data-range='24h']", "aria-pressed") == "true"
    assert "over the last 24 hours" in (page.text_content("#chart-throughput svg title") or "")
    ARTIFACTS.mkdir(exist_ok=True)
    page.click(".range button[data-range='1h']")
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    watched.assert_clean()


def test_a_wrong_key_gets_a_clear_message_and_is_audited(watched: Watched, server: GunicornServer) -> None:
    page = watched.page
    open_dashboard(watched, server)
    landed = sign_in(page, "not-the-metrics-key")
    assert landed.status == 401
    assert page.inner_text("[role=alert]") == "That key is not valid. Check it and try again."
    assert page.is_visible("#signin") and page.is_hidden("#business")
    assert "not-the-metrics-key" not in page.content()
    audit = requests.get(f"{server.url}/api/monitoring/audit?kind=access_denied", timeout=5,
                         headers={"X-Admin-Key": ADMIN_KEY}).json()["entries"]
    assert any(e["path"] == "/api/monitoring/dashboard/login" and e["detail"]["reason"] == "wrong_key" for e in audit)
    # The page the failed sign-in answered with still refreshes itself from the public feed.
    wait_until(page, "document.getElementById('freshness').textContent.startsWith('Updated')")


def test_sign_out_removes_the_figures(watched: Watched, server: GunicornServer) -> None:
    page = watched.page
    open_dashboard(watched, server)
    sign_in(page, METRICS_KEY)
    page.wait_for_selector("#business:not([hidden]) #kpi-revenue")
    with page.expect_navigation():
        page.click("#signout button[type=submit]")
    page.wait_for_selector("#signin:not([hidden])")
    wait_until(page, "document.getElementById('status-word').textContent !== 'Loading'")
    assert page.is_hidden("#business") and "876.54" not in page.content()
    watched.assert_clean()


def test_it_keeps_the_last_figures_and_says_so_while_offline(watched: Watched, server: GunicornServer) -> None:
    page = watched.page
    open_dashboard(watched, server)
    page.wait_for_selector("#services-table-body tr[data-service='stripe']")
    watched.context.set_offline(True)
    wait_until(page, "document.getElementById('freshness').textContent.startsWith('Could not refresh')", 10)
    assert "showing figures from" in page.inner_text("#freshness")
    assert page.locator("#services-table-body tr[data-service='stripe']").count() == 1
    watched.context.set_offline(False)
    wait_until(page, "document.getElementById('freshness').textContent.startsWith('Updated')", 10)
    assert watched.console_errors == [] or all("Failed to fetch" in e or "ERR_INTERNET_DISCONNECTED" in e
                                               for e in watched.console_errors)


@pytest.mark.parametrize("signed_in", [False, True], ids=["public", "signed-in"])
def test_a_phone_shows_it_without_sideways_scrolling(browser: Any, server: GunicornServer, signed_in: bool) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 780}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    try:
        watched = Watched(context, server.url)
        page = watched.page
        open_dashboard(watched, server)
        page.wait_for_selector("#services-table-body tr[data-service='stripe']")
        if signed_in:
            sign_in(page, METRICS_KEY)
            page.wait_for_selector("#charts:not([hidden]) #chart-latency svg")
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                               " document.body.scrollWidth]")
        assert widths[0] <= widths[1] and widths[2] <= widths[1], widths
        assert page.evaluate("document.querySelector('#chart-latency svg')?.getBoundingClientRect().width ?? 0")\
            <= 360
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-phone-{'signed-in' if signed_in else 'public'}.png"),
                        full_page=True)
        watched.assert_clean()
    finally:
        context.close()
