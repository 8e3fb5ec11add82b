"""The OpenAPI document is valid 3.1 and describes every route the app registers."""
from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate


def test_document_is_valid_openapi_31(client: Any) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_registered_route_and_method_is_documented(app: Any, client: Any) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_documented_key_requirements_match_the_views(app: Any, client: Any) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        role = getattr(view, "required_role", None)
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = paths[path][method.lower()]
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            if role == "admin":
                assert "AdminKey" in schemes and "ApiKey" not in schemes, path
                assert "403" in operation["responses"], path
            elif role == "metrics":
                assert "ApiKey" in schemes, path
            if role:
                assert "401" in operation["responses"], path


def test_an_answer_its_document_does_not_describe_fails_the_test_that_reads_it(app: Any) -> None:
    """The suite-wide check (tests/support/contract.py) can fail: a declared endpoint that
    answers something else than its model is caught on the first read."""
    import pytest
    from flask import Blueprint

    from monitoring.api.contract import PUBLIC, endpoint
    from monitoring.api.health import Liveness

    drifting = Blueprint("centinela_drift", __name__)

    @drifting.get("/api/drift")
    @endpoint(key=PUBLIC, responses={200: Liveness})
    def drift() -> Any:
        return {"status": "sleeping", "instance": 7}

    app.register_blueprint(drifting)
    with pytest.raises(AssertionError, match="does not describe"):
        app.test_client().get("/api/drift")
