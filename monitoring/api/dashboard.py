"""/api/monitoring/dashboard: the dashboard as JSON (metrics key), as a live HTML page, and as
Grafana and Datadog dashboard documents.

The page (``format=html``) is public and shows health and uptime to anyone. It refreshes itself
from ``/dashboard/data``, which answers the ``full`` document only to a viewer with the page's
signed session cookie (or a key header) and the ``public`` one otherwise, so business figures
never reach a browser that did not give the key. The key is given once, to the login form
(POST, same-origin only, failures audited and rate limited); it never appears in a URL.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

from flask import Response, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from monitoring.api.auth import check_key, client_ip, presented_key
from monitoring.api.blueprint import centinela_blueprint, client_address
from monitoring.api.errors import ApiError
from monitoring.api.json_body import read_body
from monitoring.api.metrics import SERVICE_PARAMETER, service_arg
from monitoring.clock import isoformat
from monitoring.dashboard.data import FULL, PUBLIC, build_dashboard
from monitoring.dashboard.series import BucketMemo
from monitoring.dashboard.session import (
    COOKIE_NAME,
    SESSION_SECONDS,
    DashboardSessions,
    Session,
    same_origin,
)
from monitoring.extension import current_monitoring, current_services
from monitoring.security.audit import ACCESS_DENIED
from monitoring.security.keys import METRICS, ApiKey

log = logging.getLogger(__name__)

PACKAGE_FOLDER = Path(__file__).resolve().parent.parent / "dashboard"
bp = centinela_blueprint(
    "centinela_dashboard",
    __name__,
    "/api/monitoring",
    static_folder=str(PACKAGE_FOLDER / "static"),
    static_url_path="/dashboard/static",
    template_folder=str(PACKAGE_FOLDER / "templates"),
)

FORMATS = ("json", "html")
PLATFORMS = ("grafana", "datadog")
MAX_KEY_LENGTH = 512
LOGIN_MESSAGES = {
    "missing": "Enter the metrics key to see business figures.",
    "wrong": "That key is not valid. Check it and try again.",
    "rate_limited": "Too many failed sign-ins from this address. Wait a minute and try again.",
}
# No inline script or style, nothing from another origin: the page works offline and an injected
# string can never run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _document(view: str, service: str | None = None) -> dict[str, Any]:
    monitoring = current_monitoring()
    if monitoring.dashboard_memo is None:
        monitoring.dashboard_memo = BucketMemo()  # series buckets, reused while the store's counts hold
    return build_dashboard(monitoring.services.dashboard, view, monitoring.dashboard_memo, service)


def _sessions() -> DashboardSessions:
    return current_services().sessions


def _cookie_path() -> str:
    return url_for("centinela_dashboard.dashboard")


def _session() -> Session | None:
    return _sessions().verify(request.cookies.get(COOKIE_NAME))


_AnyResponse = TypeVar("_AnyResponse", bound=BaseResponse)  # Flask's own, or werkzeug's from redirect()


def _no_store(response: _AnyResponse) -> _AnyResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


# --- GET /api/monitoring/dashboard -----------------------------------------------------------


@bp.get("/dashboard")
def dashboard():  # type: ignore[no-untyped-def]
    output = request.args.get("format") or None
    platform = request.args.get("platform") or None
    if output is not None and output not in FORMATS:
        raise ApiError(400, f"unknown format {output[:40]!r}; valid: {', '.join(FORMATS)}", "invalid_parameter")
    if platform is not None:
        if platform not in PLATFORMS:
            raise ApiError(400, f"unknown platform {platform[:40]!r}; valid: {', '.join(PLATFORMS)}",
                           "invalid_parameter")
        if output == "html":
            raise ApiError(400, "platform= answers a JSON dashboard document; leave out format=html",
                           "invalid_parameter")
        check_key(METRICS)
        # Imported on first use: the Grafana SDK is heavy and only this export needs it.
        if platform == "grafana":
            from monitoring.dashboard.grafana import grafana_dashboard

            return jsonify(grafana_dashboard())
        from monitoring.dashboard.datadog import datadog_dashboard

        return jsonify(datadog_dashboard())
    if output == "html":
        return _page()
    service = service_arg()
    check_key(METRICS)
    return _no_store(jsonify(_document(FULL, service)))


@bp.get("/dashboard/data")
def dashboard_data():  # type: ignore[no-untyped-def]
    """The page's feed: the full document for a signed-in viewer (or a key header), else the public one."""
    key: ApiKey | None = None
    session = None
    service = service_arg()
    if presented_key() is not None:
        key = check_key(METRICS)
    else:
        session = _session()
        key = session.key if session else None
        if key is None and not current_monitoring().public:
            check_key(METRICS)  # DASHBOARD_PUBLIC=false: no public view, sign in first
    document = _document(FULL if key else PUBLIC, service)
    document["viewer"] = {
        "signedIn": session is not None,
        "role": key.role if key else None,
        "sessionExpiresAt": isoformat(session.expires_at) if session else None,
    }
    response = _no_store(jsonify(document))
    response.vary.add("Cookie")
    return response


# --- the page and its sign-in ----------------------------------------------------------------


def _page(message: str | None = None, status: int = 200) -> Response:
    monitoring = current_monitoring()
    session = _session()
    html = render_template(
        "centinela/dashboard.html",
        signed_in=session is not None,
        role=session.key.role if session else None,
        message=message,
        refresh_seconds=monitoring.services.dashboard.refresh_seconds,
        zone=monitoring.settings.zone,
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return _no_store(response)


def _refuse(reason: str) -> None:
    current_monitoring().audit.record(
        ACCESS_DENIED,
        "anonymous",
        f"{request.method} {request.path}",
        client_ip=client_ip(),
        path=request.path,
        detail={"reason": reason, "needed": METRICS},
    )


def _require_same_origin() -> None:
    if not same_origin(request.headers.get("Origin"), request.headers.get("Referer"), request.host):
        _refuse("cross_site")
        raise ApiError(403, "refused: this form must be posted from the dashboard page of this site",
                       "cross_site_request")


@bp.get("/dashboard/login")
def login_page():  # type: ignore[no-untyped-def]
    """Where a reload of a failed sign-in lands: the page itself."""
    return redirect(url_for("centinela_dashboard.dashboard", format="html"), 303)


@bp.post("/dashboard/login")
def login():  # type: ignore[no-untyped-def]
    _require_same_origin()
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise ApiError(415, "send the sign-in form as application/x-www-form-urlencoded")
    read_body()  # 413 past MAX_BODY_BYTES, chunked too; the form is parsed from these bytes
    monitoring = current_monitoring()
    # RATELIMIT_LOGIN counts failed sign-ins per address, in the rate limits' own storage.
    limits = monitoring.services.limits
    budget, address = limits.budgets["login"], client_address()
    if limits.exhausted(budget, address):
        _refuse("rate_limited")
        response = _page(LOGIN_MESSAGES["rate_limited"], 429)
        response.headers["Retry-After"] = str(limits.reset_in(budget, address))
        return response
    presented = request.form.get("key", "").strip()
    key = monitoring.keyring.identify(presented) if 0 < len(presented) <= MAX_KEY_LENGTH else None
    if key is None or not key.grants(METRICS):
        limits.count(budget, address)
        _refuse("missing_key" if not presented else "wrong_key")
        return _page(LOGIN_MESSAGES["missing" if not presented else "wrong"], 401)
    signed_in = redirect(url_for("centinela_dashboard.dashboard", format="html"), 303)
    signed_in.set_cookie(
        COOKIE_NAME,
        _sessions().issue(key),
        max_age=SESSION_SECONDS,
        path=_cookie_path(),
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
    return _no_store(signed_in)


@bp.post("/dashboard/logout")
def logout():  # type: ignore[no-untyped-def]
    _require_same_origin()
    _sessions().revoke(request.cookies.get(COOKIE_NAME))  # a copy of the cookie ends with it
    response = redirect(url_for("centinela_dashboard.dashboard", format="html"), 303)
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(), secure=request.is_secure, httponly=True, samesite="Strict")
    return _no_store(response)


# --- OpenAPI ---------------------------------------------------------------------------------

_UNAVAILABLE = {
    "type": "object",
    "required": ["available", "reason"],
    "properties": {"available": {"const": False}, "reason": {"type": "string"}},
}


def _section(description: str) -> dict[str, Any]:
    return {"description": description, "oneOf": [{"type": "object"}, _UNAVAILABLE]}


_SERIES_POINT = {
    "type": "object",
    "properties": {
        "at": {"type": "string", "format": "date-time", "description": "Start of the bucket."},
        "seconds": {"type": "number", "description": "Elapsed part of the bucket (less for the current one)."},
        "complete": {"type": "boolean", "description": "False for the bucket still filling."},
        "requests": {"type": "integer"},
        "errors": {"type": "integer", "description": "5xx responses."},
        "errorShare": {"type": ["number", "null"]},
        "p50": {"type": ["number", "null"], "description": "ms"},
        "p95": {"type": ["number", "null"], "description": "ms"},
        "p99": {"type": ["number", "null"], "description": "ms"},
        "payments": {"type": "object", "properties": {"succeeded": {"type": "integer"}, "failed": {"type": "integer"}}},
    },
}

_DOCUMENT = {
    "type": "object",
    "required": ["generatedAt", "view", "refreshSeconds", "status", "services", "uptime", "incidents"],
    "properties": {
        "generatedAt": {"type": "string", "format": "date-time"},
        "view": {"enum": [FULL, PUBLIC]},
        "refreshSeconds": {"type": "integer"},
        "status": {
            "type": "object",
            "properties": {
                "status": {"enum": ["healthy", "degraded", "unhealthy", "unknown"]},
                "word": {"type": "string"},
                "health_score": {"type": ["integer", "null"]},
                "checkedAt": {"type": ["string", "null"], "format": "date-time"},
                "summary": {"type": "string"},
            },
        },
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "status": {"type": "string"},
                    "critical": {"type": "boolean"},
                    "responseTime": {"type": ["number", "null"]},
                    "checkedAt": {"type": ["string", "null"]},
                    "error": {"type": ["string", "null"]},
                    "circuit": {"type": ["object", "null"]},
                    "availability24h": {"type": ["number", "null"]},
                    "checks24h": {"type": "integer", "description": "The checks availability24h rests on."},
                },
            },
        },
        "uptime": _section("Uptime, SLA compliance and error budget (GET /api/monitoring/uptime's default window)."),
        "incidents": _section("Incident count, the open incident and the recent ones."),
        "restricted": {"type": "array", "items": {"type": "string"},
                       "description": "view=public: the sections left out, which need the metrics key."},
        "appServices": {
            "description": "view=full: the services the store knows (requests or errors) and the one these figures "
            "are of (`selected`, the service parameter; null: every service combined). The page offers a picker "
            "when there is more than one.",
            "oneOf": [{"type": "object", "required": ["selected", "known"], "properties": {
                "selected": {"type": ["string", "null"]},
                "known": {"type": "array", "items": {"type": "string"}}}}, _UNAVAILABLE],
        },
        "performance": _section("Request figures over the last hour (the performance category), top routes."),
        "series": {
            "description": "Per-bucket series: `1h` (1-minute buckets) and `24h` (15-minute buckets).",
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "window": {"type": "string"},
                    "stepSeconds": {"type": "integer"},
                    "from": {"type": "string", "format": "date-time"},
                    "to": {"type": "string", "format": "date-time"},
                    "points": {"type": "array", "items": _SERIES_POINT},
                    "latest": {"type": ["object", "null"],
                               "description": "The last complete bucket (from, to and its figures): what legends "
                               "and summaries read."},
                },
            },
        },
        "errors": _section("Unhandled exceptions over 24 h and the busiest error groups (the errors category)."),
        "business": _section("Business KPIs since midnight UTC: payment success rate, revenue per currency "
                             "(integer minor units and a decimal string), active users, ticket operations."),
        "alerts": _section("Active alerts with their severity."),
    },
}

_DOCUMENT_RESPONSES = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "429": {"$ref": "#/components/responses/RateLimited"},
}

_HTML = {"text/html": {"schema": {"type": "string"}}}

OPENAPI_PATHS = {
    "/api/monitoring/dashboard": {
        "get": {
            "summary": "Dashboard",
            "description": "The dashboard document (JSON, metrics key); `format=html` the live page (public: health "
            "and uptime for anyone, every figure after signing in with the metrics key); `platform=grafana` a "
            "Grafana dashboard and `platform=datadog` a Datadog dashboard over our exports' metric names "
            "(metrics key).",
            "tags": ["dashboard"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}, {}],
            "parameters": [
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS), "default": "json"}},
                {"name": "platform", "in": "query", "schema": {"type": "string", "enum": list(PLATFORMS)},
                 "description": "A dashboard document to import into Grafana or Datadog; not with format=html."},
                SERVICE_PARAMETER,
            ],
            "responses": {
                "200": {
                    "description": "The dashboard document, the HTML page, or a Grafana / Datadog dashboard.",
                    # Each alternative requires keys the others lack, so exactly one matches.
                    "content": {"application/json": {"schema": {"oneOf": [
                        _DOCUMENT,
                        {"type": "object", "required": ["panels", "schemaVersion", "uid"],
                         "description": "platform=grafana: a Grafana dashboard (schema of Grafana 11.6)."},
                        {"type": "object", "required": ["widgets", "layout_type"],
                         "description": "platform=datadog: a Datadog dashboard (POST /api/v1/dashboard body)."},
                    ]}}, **_HTML},
                },
                **_DOCUMENT_RESPONSES,
            },
        }
    },
    "/api/monitoring/dashboard/data": {
        "get": {
            "summary": "The live page's feed",
            "description": "What the HTML page may show its viewer: the full document (`view: full`) with the page's "
            "signed session cookie or a key header; otherwise the public one (`view: public`: status, services, "
            "uptime, incidents; business and request figures are not in it). `viewer` says which.",
            "tags": ["dashboard"],
            "security": [{}, {"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [SERVICE_PARAMETER],
            "responses": {
                "200": {"description": "The dashboard document for this viewer.",
                        "content": {"application/json": {"schema": _DOCUMENT}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    },
    "/api/monitoring/dashboard/login": {
        "get": {
            "summary": "Back to the page",
            "description": "Redirects (303) to the HTML page: where a reload after a failed sign-in lands.",
            "tags": ["dashboard"],
            "security": [],
            "responses": {"303": {"description": "To `?format=html`."},
                          "429": {"$ref": "#/components/responses/RateLimited"}},
        },
        "post": {
            "summary": "Sign in to the HTML dashboard",
            "description": "The page's form posts the metrics (or admin) key once; the answer sets a signed, "
            "HttpOnly, SameSite=Strict session cookie (Secure over HTTPS, 12 h) and redirects to the page. Only "
            "same-origin posts are accepted (Origin, else Referer). A wrong key answers the page with the message "
            "and 401, and is audited; more than RATELIMIT_LOGIN failures per address answer 429.",
            "tags": ["dashboard"],
            "security": [],
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}}}}},
            },
            "responses": {
                "303": {"description": "Signed in: the session cookie is set; to `?format=html`."},
                "401": {"description": "Missing or wrong key: the page with the message.", "content": _HTML},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "413": {"$ref": "#/components/responses/PayloadTooLarge"},
                "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
                "429": {"description": "Too many failed sign-ins: the page with the message, and Retry-After.",
                        "content": _HTML},
            },
        },
    },
    "/api/monitoring/dashboard/logout": {
        "post": {
            "summary": "Sign out of the HTML dashboard",
            "description": "Clears the session cookie (same-origin posts only) and redirects to the page.",
            "tags": ["dashboard"],
            "security": [],
            "responses": {
                "303": {"description": "Signed out; to `?format=html`."},
                "403": {"$ref": "#/components/responses/Forbidden"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    },
    "/api/monitoring/dashboard/static/{filename}": {
        "get": {
            "summary": "The page's script and style sheet",
            "tags": ["dashboard"],
            "security": [],
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The file.", "content": {"text/javascript": {}, "text/css": {}}},
                "404": {"$ref": "#/components/responses/NotFound"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    },
    "/": {
        "get": {
            "summary": "To the dashboard",
            "description": "On Centinela's own service: redirects (302) to the HTML dashboard.",
            "tags": ["dashboard"],
            "security": [],
            "responses": {"302": {"description": "To /api/monitoring/dashboard?format=html."},
                          "429": {"$ref": "#/components/responses/RateLimited"}},
        }
    },
}
