"""INGEST_API_KEY: generated like the other keys, sends telemetry, reads nothing (403 elsewhere)."""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from monitoring.security.keys import KeyRing, generate_key
from monitoring.settings import Settings
from tests.conftest import INGEST_HEADERS, INGEST_KEY, METRICS_HEADERS

EVENT = {"type": "ticket", "operation": "purchased", "ticket_type": "day-pass"}


def test_generated_keys_use_only_letters_and_digits() -> None:
    for _ in range(200):
        key = generate_key()
        assert re.fullmatch(r"[A-Za-z0-9]{43}", key)


def test_a_missing_ingest_key_is_generated_once_mode_0600_and_announced_by_path_and_id(tmp_path: Path) -> None:
    announced: list[tuple[str, str, str]] = []
    ring = KeyRing.load("m" * 40, "a" * 40, str(tmp_path), lambda *args: announced.append(args))
    path = tmp_path / "ingest-api-key"
    assert [(role, where) for role, _, where in announced] == [("ingest", str(path))]
    secret = path.read_text().strip()
    assert secret == ring.get("ingest").secret and secret.isalnum() and len(secret) >= 40
    assert announced[0][1].startswith("ingest:") and secret not in announced[0][1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    KeyRing.load("m" * 40, "a" * 40, str(tmp_path), lambda *args: announced.append(args))
    assert len(announced) == 1


def test_the_ingest_key_must_differ_from_the_others(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="INGEST_API_KEY"):
        KeyRing.load("m" * 40, "a" * 40, str(tmp_path), ingest_key="m" * 40)


def test_the_ingest_key_posts_events_and_the_metrics_key_still_does(client: Any) -> None:
    assert client.post("/api/monitoring/events", json=EVENT, headers=INGEST_HEADERS).status_code == 201
    assert client.post("/api/monitoring/events", json=EVENT, headers=METRICS_HEADERS).status_code == 201


def _documented_get_operations(client: Any) -> list[tuple[str, dict[str, Any]]]:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    return [(path, item["get"]) for path, item in sorted(paths.items()) if "get" in item]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("how", ["header", "query", "bearer"])
def test_the_ingest_key_is_refused_on_every_documented_read_and_admin_endpoint(
    make_app: Callable[..., Any], how: str
) -> None:
    client = make_app({"DASHBOARD_PUBLIC": "false"}).test_client()
    checked = []
    for path, operation in _documented_get_operations(client):
        if operation.get("security", []) in ([], [{}]):
            continue  # public: no key is asked for, so none is refused
        url = _concrete(path)
        if how == "header":
            response = client.get(url, headers=INGEST_HEADERS)
        elif how == "query":
            response = client.get(f"{url}?api_key={INGEST_KEY}")
        else:
            response = client.get(url, headers={"Authorization": f"Bearer {INGEST_KEY}"})
        if how == "bearer":
            # Bearer is an ingest-protocol convention only: elsewhere it is no key at all.
            assert response.status_code in (401, 303, 302), (url, response.status_code)
        else:
            assert response.status_code == 403, (url, response.status_code, response.get_data(as_text=True)[:200])
            assert response.get_json()["error"]["code"] == "forbidden"
            assert "ingest key only sends telemetry" in response.get_json()["error"]["message"]
        assert INGEST_KEY not in response.get_data(as_text=True)
        checked.append(url)
    assert len(checked) >= 7  # metrics, alerts, audit, errors, dashboard data, health details...


def test_the_ingest_key_does_not_sign_in_to_the_dashboard(make_app: Callable[..., Any]) -> None:
    client = make_app({"DASHBOARD_PUBLIC": "false"}).test_client()
    response = client.post("/api/monitoring/dashboard/login", data={"key": INGEST_KEY},
                           headers={"Origin": "http://localhost"})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers


def test_the_ingest_key_is_refused_on_admin_writes(client: Any) -> None:
    response = client.post("/api/monitoring/alerts", json={"action": "acknowledge", "ids": [1]},
                           headers={"X-Admin-Key": INGEST_KEY})
    assert response.status_code == 403


def test_the_generated_ingest_key_works_with_nothing_configured(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"INGEST_API_KEY": ""})
    app = create_app(settings)
    try:
        generated = (Path(settings.var_dir) / "ingest-api-key").read_text().strip()
        client = app.test_client()
        assert client.post("/api/monitoring/events", json=EVENT, headers={"X-API-Key": generated}).status_code == 201
        assert client.get("/api/monitoring/metrics", headers={"X-API-Key": generated}).status_code == 403
    finally:
        app.extensions["centinela"].shutdown()
