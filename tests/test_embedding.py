"""The way a shop arrives: Centinela installed into a fresh virtual environment from the checkout
(not imported from the source tree), embedded in examples/shop, served by a real
``gunicorn --preload -w 2``. The shop keeps its own config.py, error pages and upload limit;
its requests and its exception reach Centinela's figures; gunicorn stops in a few seconds."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.receiver import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"X-API-Key": METRICS_KEY}


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the package installed from the checkout, as a user would."""
    work = tmp_path_factory.mktemp("venv")
    # What a source distribution holds, copied out: pip builds in the source folder, and the
    # test must leave the checkout as it found it.
    source = work / "centinela-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "monitoring", source / "monitoring", ignore=shutil.ignore_patterns("__pycache__"))
    venv = work / "shop-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(source),
         "gunicorn==27.0.1"],
        check=True, capture_output=True, text=True,
    )
    return venv


@pytest.fixture
def shop(tmp_path: Path, fresh_venv: Path) -> Iterator[dict[str, Any]]:
    folder = tmp_path / "shop"
    shutil.copytree(ROOT / "examples" / "shop", folder)
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    env = {
        # Nothing of the checkout on the path: the shop imports the installed package.
        "PATH": f"{fresh_venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "METRICS_API_KEY": METRICS_KEY,
        "ADMIN_API_KEY": ADMIN_KEY,
        "METRICS_FLUSH_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(fresh_venv / "bin" / "gunicorn"), "--preload", "-w", "2", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "20", "shop:app"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        try:
            requests.get(url + "/tickets/1", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)  # waiting for a real process to bind its port
    yield {"url": url, "folder": folder, "process": process, "log": log_path}
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def test_the_shop_under_gunicorn_preload_keeps_its_own_and_is_monitored(shop: dict[str, Any]) -> None:
    url, folder = shop["url"], shop["folder"]
    config_before = hashlib.sha256((folder / "config.py").read_bytes()).hexdigest()
    module = subprocess.run(
        [str(Path(shop["process"].args[0]).parent / "python"), "-c", "import monitoring; print(monitoring.__file__)"],
        cwd=folder, capture_output=True, text=True, check=True,
    ).stdout
    assert "site-packages" in module and str(ROOT) not in module  # installed, not the source tree

    home = requests.get(url + "/", timeout=5)
    assert home.status_code == 200 and "Festival tickets" in home.text
    missing = requests.get(url + "/no-such-page", headers={"Accept": "text/html"}, timeout=5)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/html")
    assert "not in the line-up" in missing.text  # the shop's own 404 page, not Centinela's JSON
    broken = requests.get(url + "/boom", timeout=5)
    assert broken.status_code == 500 and "tripped over a cable" in broken.text  # the shop's 500 handler
    upload = requests.post(url + "/upload", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert upload.status_code == 200 and upload.json() == {"received": 2 * 1024 * 1024}
    for ticket in range(1, 11):
        assert requests.get(f"{url}/tickets/{ticket}", timeout=5).status_code == 200
    assert requests.post(url + "/checkout", data={"amount": "4500"}, timeout=5).status_code == 200
    # The warm-up request of the fixture, the 15 above: 16 requests of the shop.
    expected = 16

    def performance() -> dict[str, Any]:
        response = requests.get(url + "/api/monitoring/metrics?category=performance&window=1h",
                                headers=HEADERS, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["performance"]

    deadline = time.monotonic() + 15  # each worker flushes every second
    while performance()["requests.count"] != expected and time.monotonic() < deadline:
        time.sleep(0.25)
    figures = performance()
    assert figures["requests.count"] == expected, figures
    assert figures["status"]["5xx"] == 1 and figures["status"]["4xx"] == 1
    routes = {(r["method"], r["route"]) for r in figures["routes"]}
    assert ("GET", "/tickets/<ticket_id>") in routes and ("GET", "<unmatched>") in routes

    deadline = time.monotonic() + 10
    groups: list[dict[str, Any]] = []
    while not groups and time.monotonic() < deadline:
        groups = requests.get(url + "/api/monitoring/errors", headers=HEADERS, timeout=5).json()["groups"]
        time.sleep(0.25)
    assert [(g["type"], g["route"], g["count"]) for g in groups] == [("RuntimeError", "GET /boom", 1)]
    business = requests.get(url + "/api/monitoring/metrics?category=business&window=1h",
                            headers=HEADERS, timeout=5).json()["business"]
    assert business["payments.count"] == 1

    # Private on a host app by default: uptime and health details need the key, probes do not.
    assert requests.get(url + "/api/monitoring/uptime", timeout=5).status_code == 401
    assert requests.get(url + "/api/health/check", timeout=5).status_code == 401
    assert requests.get(url + "/api/health/live", timeout=5).status_code == 200
    assert requests.get(url + "/api/health/ready", timeout=5).status_code == 200

    process = shop["process"]
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    assert time.monotonic() - started < 5, shop["log"].read_text()
    assert hashlib.sha256((folder / "config.py").read_bytes()).hexdigest() == config_before
