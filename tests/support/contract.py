"""Every JSON answer a test reads through the Flask test client is checked against the OpenAPI
document the same app serves (openapi-core), so the document cannot drift from what the
endpoints do. Installed for the whole suite by an autouse fixture in conftest.py."""
from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

import monitoring.api.health  # noqa: F401  # declares the probes, whose own module has no pydantic
from monitoring.api.blueprint import LazyView

_by_document: dict[str, OpenAPI] = {}  # most apps serve the same document: parse it once
checked: list[str] = []  # "GET /api/health/live 200": what was checked, for the test of the check itself


def _document(app: Flask) -> OpenAPI:
    found = getattr(app, "_centinela_test_openapi", None)
    if found is None:
        from monitoring.api.openapi import document_of_current_app

        # Built as the endpoint builds it, without a request through the app (which would be
        # counted in its metrics and its rate limits).
        with app.app_context():
            text = json.dumps(document_of_current_app(), sort_keys=True)
        found = _by_document.get(text)
        if found is None:
            found = _by_document[text] = OpenAPI.from_dict(json.loads(text), config=Config(
                extra_media_type_deserializers={"application/health+json": json.loads}))
        app._centinela_test_openapi = found  # type: ignore[attr-defined]
    return found


def _declared_view(app: Flask, path: str, method: str) -> Any:
    adapter = app.url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path, method=method, return_rule=True)
    except HTTPException:
        return None
    view = app.view_functions.get(rule.endpoint)
    if isinstance(view, LazyView):  # served: its module is loaded by now
        view = view.resolve()
    return view if getattr(view, "_centinela_operation", None) is not None else None


def check_response(client: FlaskClient, response: Any) -> None:
    app = client.application
    if "centinela" not in app.extensions:
        return
    request = getattr(response, "request", None)
    if request is None or not response.mimetype or "json" not in response.mimetype:
        return
    if _declared_view(app, request.path, request.method) is None:
        return  # not one of Centinela's declared endpoints (a host route, or not converted yet)
    # The app has read the request's body stream; the answer is checked by method and path alone.
    bodiless = Request({**request.environ, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"})
    result = _document(app).unmarshal_response(WerkzeugOpenAPIRequest(bodiless), WerkzeugOpenAPIResponse(response))
    if result.errors:
        details = "; ".join(str(error) for error in result.errors)
        raise AssertionError(
            f"{request.method} {request.path} answered {response.status_code} with a body its OpenAPI document "
            f"does not describe: {details}\n{response.get_data(as_text=True)[:2000]}"
        )
    checked.append(f"{request.method} {request.path} {response.status_code}")


def checking_open(original: Callable[..., Any]) -> Callable[..., Any]:
    def open_and_check(self: FlaskClient, *args: Any, **kwargs: Any) -> Any:
        response = original(self, *args, **kwargs)
        check_response(self, response)
        return response

    return open_and_check
