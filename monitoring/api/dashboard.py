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
from typing import Annotated, Any, Literal, TypeVar

from flask import Response, jsonify, redirect, render_template, request, url_for
from pydantic import BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema, model_validator
from werkzeug.wrappers import Response as BaseResponse

from monitoring.api.auth import check_key, client_ip, presented_key
from monitoring.api.blueprint import client_address
from monitoring.api.contract import PUBLIC as NO_KEY
from monitoring.api.contract import (
    Content,
    Document,
    ErrorBody,
    Model,
    QueryModel,
    ServiceFilter,
    Timestamp,
    absent_if_empty,
    endpoint,
    sometimes_absent,
)
from monitoring.api.errors import ApiError
from monitoring.api.json_body import read_body
from monitoring.api.metrics import UnavailableCategory
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


# --- the contract ---------------------------------------------------------------------------

# The wording of these two refusals (and of the combination below) predates the declarations and
# names the valid values; the models document them as enums.
FormatName = Annotated[str, BeforeValidator(absent_if_empty), WithJsonSchema({"type": "string", "enum": list(FORMATS)})]
PlatformName = Annotated[str | None, BeforeValidator(absent_if_empty),
                         WithJsonSchema({"type": "string", "enum": list(PLATFORMS)})]
SERVICE_DESCRIPTION = ("Only this service's requests and errors (SERVICE_NAME of an embedded app, service.name of an "
                       "ingested one); every service combined when absent. A service the store does not know has "
                       "empty figures.")


class DashboardQuery(QueryModel):
    format: FormatName = Field("json", description="json: the dashboard document (metrics key); html: the live page.")
    platform: PlatformName = Field(None, description="A dashboard document to import into Grafana or Datadog; not "
                                   "with format=html.")
    service: ServiceFilter = Field(None, description=SERVICE_DESCRIPTION)

    @model_validator(mode="after")
    def _known_and_compatible(self) -> DashboardQuery:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format[:40]!r}; valid: {', '.join(FORMATS)}")
        if self.platform is not None and self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform[:40]!r}; valid: {', '.join(PLATFORMS)}")
        if self.platform is not None and self.format == "html":
            raise ValueError("platform= answers a JSON dashboard document; leave out format=html")
        return self


class FeedQuery(QueryModel):
    service: ServiceFilter = Field(None, description=SERVICE_DESCRIPTION)


class SignInForm(Model):
    key: str = Field(description="The metrics (or admin) key.")


class HealthStatus(Document):
    status: Literal["healthy", "degraded", "unhealthy", "unknown"]
    word: str
    health_score: int | None
    checked_at: Timestamp | None = Field(alias="checkedAt")
    summary: str


class DependencyStatus(Document):
    name: str
    status: str
    critical: bool
    response_time: float | None = Field(alias="responseTime", description="ms")
    checked_at: Timestamp | None = Field(alias="checkedAt")
    error: str | None
    circuit: dict[str, Any] | None
    availability_24h: float | None = Field(alias="availability24h")
    checks_24h: int = Field(alias="checks24h", description="The checks availability24h rests on.")


class AppServices(Document):
    selected: str | None = Field(description="The service parameter; null: every service combined.")
    known: list[str]


class PaymentCounts(Document):
    succeeded: int
    failed: int


class SeriesPoint(Document):
    at: Timestamp = Field(description="Start of the bucket.")
    seconds: float = Field(description="Elapsed part of the bucket (less for the current one).")
    complete: bool = Field(description="False for the bucket still filling.")
    requests: int
    errors: int = Field(description="5xx responses.")
    error_share: float | None = Field(alias="errorShare")
    p50: float | None = Field(description="ms")
    p95: float | None = Field(description="ms")
    p99: float | None = Field(description="ms")
    payments: PaymentCounts


class SeriesWindow(Document):
    window: str
    step_seconds: int = Field(alias="stepSeconds")
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    points: list[SeriesPoint]
    latest: dict[str, Any] | None = Field(description="The last complete bucket (from, to and its figures): what "
                                          "legends and summaries read.")


Section = dict[str, Any] | UnavailableCategory


class Viewer(Document):
    signed_in: bool = Field(alias="signedIn")
    role: str | None
    session_expires_at: Timestamp | None = Field(alias="sessionExpiresAt")


class DashboardDocument(Document):
    """The dashboard: what the page shows. ``view: public`` has the sections anyone may see and
    ``restricted`` (the ones left out); ``view: full`` has every section and no ``restricted``.
    A section that could not be computed is ``{"available": false, "reason"}``."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=sometimes_absent(
        "restricted", "appServices", "performance", "series", "errors", "business", "alerts", "viewer"))

    generated_at: Timestamp = Field(alias="generatedAt", description="The answer's one moment.")
    view: Literal["full", "public"]
    refresh_seconds: int = Field(alias="refreshSeconds")
    status: HealthStatus
    services: list[DependencyStatus]
    uptime: Section = Field(description="Uptime, SLA compliance and error budget (GET /api/monitoring/uptime's "
                            "default window).")
    incidents: Section = Field(description="Incident count, the open incident and the recent ones.")
    restricted: list[str] = Field(description="view=public: the sections left out, which need the metrics key.")
    app_services: AppServices | UnavailableCategory = Field(
        alias="appServices", description="view=full: the services the store knows (requests or errors) and the one "
        "these figures are of. The page offers a picker when there is more than one.")
    performance: Section = Field(description="Request figures over the last hour (the performance category), "
                                 "top routes.")
    series: dict[str, SeriesWindow] | UnavailableCategory = Field(
        description="Per-bucket series: `1h` (1-minute buckets) and `24h` (15-minute buckets).")
    errors: Section = Field(description="Unhandled exceptions over 24 h and the busiest error groups (the errors "
                            "category).")
    business: Section = Field(description="Business KPIs since midnight UTC: payment success rate, revenue per "
                              "currency (integer minor units and a decimal string), active users, ticket operations.")
    alerts: Section = Field(description="Active alerts with their severity.")
    viewer: Viewer = Field(description="/dashboard/data only: who the page's viewer is.")


class GrafanaDashboard(Document):
    """platform=grafana: a Grafana dashboard (schema of Grafana 11.6)."""

    panels: list[dict[str, Any]]
    schema_version: int = Field(alias="schemaVersion")
    uid: str


class DatadogDashboard(Document):
    """platform=datadog: a Datadog dashboard (the body of POST /api/v1/dashboard)."""

    widgets: list[dict[str, Any]]
    layout_type: str


class DashboardAnswer(RootModel[Any]):
    """The dashboard document, or a Grafana or Datadog dashboard: each requires keys the others lack."""

    model_config = ConfigDict(defer_build=True)
    root: DashboardDocument | GrafanaDashboard | DatadogDashboard


_PAGE = Content("text/html", "The live page.", {"type": "string"})


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


_VIEWER_SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}, {}]


@endpoint(
    key=None, security=_VIEWER_SECURITY, query=DashboardQuery, responses={200: DashboardAnswer},
    extra_content={200: (_PAGE,)}, tags=["dashboard"],
    descriptions={200: "The dashboard document, the HTML page, or a Grafana / Datadog dashboard."},
)
def dashboard(query: DashboardQuery) -> BaseResponse:
    """Dashboard

    The dashboard document (JSON, metrics key); `format=html` the live page (public: health and
    uptime for anyone, every figure after signing in with the metrics key); `platform=grafana` a
    Grafana dashboard and `platform=datadog` a Datadog dashboard over our exports' metric names
    (metrics key).
    """
    if query.platform is not None:
        check_key(METRICS)
        # Imported on first use: the Grafana SDK is heavy and only this export needs it.
        if query.platform == "grafana":
            from monitoring.dashboard.grafana import grafana_dashboard

            return jsonify(grafana_dashboard())
        from monitoring.dashboard.datadog import datadog_dashboard

        return jsonify(datadog_dashboard())
    if query.format == "html":
        return _page()
    check_key(METRICS)
    return _no_store(jsonify(_document(FULL, query.service)))


@endpoint(key=None, security=[{}, {"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}], query=FeedQuery,
          responses={200: DashboardDocument}, tags=["dashboard"],
          descriptions={200: "The dashboard document for this viewer."})
def dashboard_data(query: FeedQuery) -> Response:
    """The live page's feed

    What the HTML page may show its viewer: the full document (`view: full`) with the page's
    signed session cookie or a key header; otherwise the public one (`view: public`: status,
    services, uptime, incidents; business and request figures are not in it), or 401 when
    DASHBOARD_PUBLIC is false. `viewer` says which.
    """
    key: ApiKey | None = None
    session = None
    if presented_key() is not None:
        key = check_key(METRICS)
    else:
        session = _session()
        key = session.key if session else None
        if key is None and not current_monitoring().public:
            check_key(METRICS)  # DASHBOARD_PUBLIC=false: no public view, sign in first
    document = _document(FULL if key else PUBLIC, query.service)
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


@endpoint(key=NO_KEY, responses={303: None}, tags=["dashboard"], descriptions={303: "To `?format=html`."})
def login_page() -> BaseResponse:
    """Back to the page

    Where a reload of a failed sign-in lands: a redirect (303) to the HTML page.
    """
    return redirect(url_for("centinela_dashboard.dashboard", format="html"), 303)


@endpoint(
    key=NO_KEY, form=SignInForm, tags=["dashboard"],
    responses={303: None, 401: None, 403: ErrorBody, 413: ErrorBody, 415: ErrorBody, 429: ErrorBody},
    extra_content={401: (_PAGE,), 429: (_PAGE,)},
    descriptions={303: "Signed in: the session cookie is set; to `?format=html`.",
                  401: "Missing or wrong key: the page with the message.",
                  403: "Not posted from this site's dashboard page (`cross_site_request`).",
                  429: "Too many failed sign-ins: the page with the message (or, past the per-address limit, "
                       "the JSON error)."},
)
def login() -> BaseResponse:
    """Sign in to the HTML dashboard

    The page's form posts the metrics (or admin) key once; the answer sets a signed, HttpOnly,
    SameSite=Strict session cookie (Secure over HTTPS, 12 h) and redirects to the page. Only
    same-origin posts are accepted (Origin, else Referer). A wrong key answers the page with the
    message and 401, and is audited; more than RATELIMIT_LOGIN failures per address answer 429.
    """
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


@endpoint(key=NO_KEY, responses={303: None, 403: ErrorBody}, tags=["dashboard"],
          descriptions={303: "Signed out; to `?format=html`.",
                        403: "Not posted from this site's dashboard page (`cross_site_request`)."})
def logout() -> BaseResponse:
    """Sign out of the HTML dashboard

    Revokes the session (a copy of its cookie ends with it), clears the cookie (same-origin posts
    only) and redirects to the page.
    """
    _require_same_origin()
    _sessions().revoke(request.cookies.get(COOKIE_NAME))  # a copy of the cookie ends with it
    response = redirect(url_for("centinela_dashboard.dashboard", format="html"), 303)
    response.delete_cookie(COOKIE_NAME, path=_cookie_path(), secure=request.is_secure, httponly=True, samesite="Strict")
    return _no_store(response)


# The page's script and style sheet are served by the blueprint's static folder (Flask's own view,
# not declared with @endpoint), so their entry is written here.
OPENAPI_PATHS = {
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
}
