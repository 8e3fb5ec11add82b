"""The first start as an operator sees it (issue 17): a real `make run` from another folder, the
keys generated into files and never into the log, private files on disk, and a second start on
a port in use that says so in one line before touching the store."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.receiver import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _wait_live(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(url + "/api/health/live", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)  # a real process binding its port
    raise AssertionError(f"no answer within {timeout}s:\n{log.read_text()}")


@pytest.fixture
def first_start(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`make -C <checkout> run` started from a folder of its own, with nothing configured."""
    var = tmp_path / "var"
    port = free_port()
    log = tmp_path / "make-run.log"
    env = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
    env.update({"PORT": str(port), "VAR_DIR": str(var), "WORKERS": "1", "DATABASE_URL": ""})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with open(log, "wb") as out:
        process = subprocess.Popen(["make", "-s", "-C", str(ROOT), "run"], cwd=elsewhere, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_live(f"http://127.0.0.1:{port}", process, log)
        yield f"http://127.0.0.1:{port}", var, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_make_run_from_another_folder_keeps_keys_out_of_the_log_and_files_private(
    first_start: tuple[str, Path, Path],
) -> None:
    url, var, log = first_start
    text = log.read_text()
    for role in ("metrics", "admin", "ingest"):
        key_file = var / f"{role}-api-key"
        secret = key_file.read_text().strip()
        assert len(secret) >= 40 and secret.isalnum()  # letters and digits only
        assert secret not in text  # never in the log
        assert f"generated the {role} API key {role}:" in text and str(key_file) in text  # id and file
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    database = var / "centinela.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    metrics_key = (var / "metrics-api-key").read_text().strip()
    assert requests.get(url + "/api/monitoring/metrics", headers={"X-API-Key": metrics_key}, timeout=10).ok
    for companion in (var / "centinela.db-wal", var / "centinela.db-shm"):
        if companion.exists():
            assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0, companion


def test_a_port_in_use_is_one_line_naming_port_before_the_store_is_touched(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gunicorn = Path(sys.executable).parent / "gunicorn"
        result = subprocess.run(
            [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, capture_output=True, text=True,
            timeout=60, env={"PATH": "/usr/bin:/bin", "PORT": str(port), "VAR_DIR": str(tmp_path / "var")},
        )
    assert result.returncode == 2
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and "PORT" in lines[0] and str(port) in lines[0], lines
    assert not (tmp_path / "var").exists()  # no store created, no key generated
