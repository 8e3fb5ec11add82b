"""Issue 17: every answer that carries figures or needs a key says Cache-Control: no-store (a
shared cache must not keep key-protected business figures, nor serve them stale), and Vary
names the headers that change it. Checked over every route of the served OpenAPI document."""
from __future__ import annotations

import re
from typing import Any

from tests.conftest import ADMIN_HEADERS


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_documented_route_answers_no_store(client: Any) -> None:
    document = client.get("/api/openapi.json").get_json()
    seen = []
    for path, item in document["paths"].items():
        for method in item:
            if method not in ("get", "post") or "/static/" in path:
                continue  # the page's own CSS and script carry no figure: caching them is fine
            url = _concrete(path)
            if method == "get":
                response = client.get(url, headers=ADMIN_HEADERS)
            else:
                response = client.post(url, json={}, headers={**ADMIN_HEADERS, "Origin": "http://localhost"})
            assert response.headers.get("Cache-Control") == "no-store", (method, url, response.status_code)
            if path != "/":  # the service's front door redirects everyone alike
                vary = {v.strip().lower() for v in response.headers.get("Vary", "").split(",")}
                assert {"x-api-key", "x-admin-key"} <= vary, (method, url, vary)
            seen.append(f"{method} {url}")
    assert len(seen) >= 12, seen  # the document has every family's routes


def test_errors_are_not_kept_either(client: Any) -> None:
    for url in ("/api/monitoring/metrics", "/api/monitoring/no-such-route", "/api/health/check?service=nope"):
        assert client.get(url).headers.get("Cache-Control") == "no-store", url
