"""Issue #12 ("Cheap"): a worker imports what a feature needs when the feature is used.

Each case runs in a fresh interpreter (this one has imported everything the suite touched):
after ``Monitoring(app)`` with default settings, the heavy modules of features nobody used yet
are not in ``sys.modules``; used, they are imported and work.
"""
from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from monitoring.api.routes import LAZY_BLUEPRINTS
from monitoring.store.database import Store
from tests.conftest import INGEST_KEY
from tests.support.models import centinela_models

ROOT = Path(__file__).resolve().parents[1]
METRICS_BODY = Path(__file__).parent / "data" / "otlp" / "metrics.json"

# Loaded only by the feature that needs them.
NOT_AT_START = (
    "google.protobuf",  # OTLP ingest
    "opentelemetry.proto",
    "monitoring.ingest.otlp_metrics",
    "monitoring.ingest.otlp_traces",
    "brotli",  # a brotli-encoded ingest body
    "apprise",  # APPRISE_URLS
    "smtplib",  # the email channel
    "email.headerregistry",
    "monitoring.notify.email_channel",
    "monitoring.notify.smtp",
    "monitoring.notify.slack",
    "monitoring.notify.pagerduty",
    "monitoring.notify.sentry_channel",
    "monitoring.notify.webhook",
    "spectree",  # the OpenAPI document
    "prometheus_client",  # the metrics export (each category's Prometheus families)
    "apscheduler.schedulers",  # the scheduler's threads, started by the first request
    "apscheduler.triggers.cron",  # a recurring maintenance window
    "sqlalchemy.dialects.postgresql",  # a PostgreSQL store
    "sqlalchemy.orm",
)

CHILD = r"""
import json, sys
from pathlib import Path

from flask import Flask

from monitoring.extension import Monitoring
from monitoring.settings import Settings

mode, var_dir, database_url, heavy, metrics_body, ingest_key, extra_env = sys.argv[1:8]
heavy = json.loads(heavy)


def loaded():
    return sorted(name for name in heavy if any(m == name or m.startswith(name + ".") for m in sys.modules))


metrics_key = "load-on-use-metrics-key-0123456789"
env = {"VAR_DIR": var_dir, "DATABASE_URL": database_url, "INGEST_API_KEY": ingest_key, "METRICS_API_KEY": metrics_key,
       **json.loads(extra_env)}
settings = Settings.from_env(env)
if mode == "embedded":
    app = Flask("festival")
    app.add_url_rule("/", "home", lambda: "welcome")
    Monitoring(app, settings=settings)
else:
    from app import create_app

    app = create_app(settings)
def built_models():
    if "pydantic" not in sys.modules:
        return []  # no model without pydantic (and the walk would import it)
    from tests.support.models import centinela_models

    return sorted({model.__qualname__ for model in centinela_models() if model.__pydantic_complete__})


report = {"at_start": loaded(), "models_at_start": built_models()}
client = app.test_client()
report["host_route"] = client.get("/").status_code if mode == "embedded" else None
report["live"] = client.get("/api/health/live").status_code
report["after_live"] = loaded()
report["models_after_live"] = built_models()
if mode == "embedded":
    report["models_after_health_check"] = (client.get("/api/health/check", headers={"X-API-Key": metrics_key}).status_code,
                                         built_models())
    report["after_health_check"] = loaded()
answer = client.get("/api/openapi.json")
report["openapi_status"] = answer.status_code
report["openapi"] = answer.get_json()
report["spectree_after_openapi"] = "spectree" in sys.modules
if mode == "standalone":
    posted = client.post("/v1/metrics", data=Path(metrics_body).read_bytes(),
                         headers={"Content-Type": "application/json", "X-API-Key": ingest_key})
    report["otlp_status"] = posted.status_code
    report["otlp_body"] = posted.get_data(as_text=True)
    report["proto_after_otlp"] = "opentelemetry.proto" in sys.modules
    scrape = client.get("/api/monitoring/metrics?format=prometheus", headers={"X-API-Key": metrics_key})
    report["prometheus_status"] = scrape.status_code
    report["prometheus_text"] = scrape.get_data(as_text=True)[:20000]
app.extensions["centinela"].shutdown()
print(json.dumps(report))
"""


def run_child(mode: str, tmp_path: Path, env: dict[str, str] | None = None,
              heavy: tuple[str, ...] = NOT_AT_START) -> dict[str, Any]:
    database_url = f"sqlite:///{tmp_path / 'centinela.db'}"
    store = Store(database_url)
    store.migrate()  # as gunicorn's master does before the workers (the migration code is not a worker's)
    store.dispose()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(tmp_path / "var"), database_url, json.dumps(heavy),
         str(METRICS_BODY), INGEST_KEY, json.dumps(env or {})],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_an_embedded_centinela_loads_no_feature_before_it_is_used(tmp_path: Path) -> None:
    report = run_child("embedded", tmp_path)
    assert report["at_start"] == []
    assert (report["host_route"], report["live"]) == (200, 200)
    # The first request starts the scheduler: APScheduler's threads, nothing else.
    assert report["after_live"] in ([], ["apscheduler.schedulers"])


# Centinela's endpoints: a view module (and pydantic, and the contract) loads with the first
# request to one of its routes (monitoring.api.routes).
VIEWS = ("pydantic", "monitoring.api.contract", "monitoring.api.probes",
         *(spec.module for spec in LAZY_BLUEPRINTS.values()))


def test_a_host_worker_loads_no_view_until_one_of_its_routes_is_asked(tmp_path: Path) -> None:
    report = run_child("embedded", tmp_path, heavy=VIEWS)
    assert report["at_start"] == []
    assert report["host_route"] == 200
    # A load balancer's probes: the probes' module alone, without pydantic (every worker answers them).
    assert (report["live"], report["after_live"]) == (200, ["monitoring.api.probes"])
    # The health check: its module, its models, nothing of the other endpoints.
    assert report["after_health_check"] == ["monitoring.api.contract", "monitoring.api.health",
                                            "monitoring.api.probes", "pydantic"]


def test_every_route_names_a_view_of_its_module_and_every_declared_view_is_routed() -> None:
    routed, modules = set(), set()
    for spec in LAZY_BLUEPRINTS.values():
        for route in spec.routes:
            module = importlib.import_module(route.module or spec.module)
            modules.add(module)
            assert callable(getattr(module, route.view, None)), f"{module.__name__} has no view {route.view}"
            routed.add(f"{module.__name__}:{route.view}")
    importlib.import_module("monitoring.api.health")  # declares the probes
    declared = {f"{module.__name__}:{name}" for module in modules for name, value in vars(module).items()
                if inspect.isfunction(value) and value.__module__ == module.__name__
                and getattr(value, "_centinela_operation", None) is not None}
    assert declared == routed


def test_pydantic_builds_a_model_when_its_endpoint_first_uses_it(tmp_path: Path) -> None:
    """The request and response models (about 140) are declared at import with defer_build: a
    worker that never serves the alerts, dashboard or OpenAPI document never builds their
    validators (1.7 MB of RSS when all are built)."""
    report = run_child("embedded", tmp_path)
    assert report["models_at_start"] == []
    assert report["models_after_live"] == []  # /live has no query and answers a fixed document
    status, built = report["models_after_health_check"]
    assert status in (200, 503)
    assert built == ["HealthCheckQuery"], built


def test_with_rate_limits_and_the_scheduler_off_neither_library_is_loaded(tmp_path: Path) -> None:
    report = run_child("embedded", tmp_path, {"RATELIMIT_ENABLED": "false", "SCHEDULER_ENABLED": "false"},
                       NOT_AT_START + ("limits",))
    assert report["at_start"] == []
    assert report["after_live"] == []


def test_the_openapi_document_loads_spectree_when_asked_and_still_validates(tmp_path: Path) -> None:
    report = run_child("embedded", tmp_path)
    assert report["openapi_status"] == 200
    assert report["spectree_after_openapi"]
    document = report["openapi"]
    validate(document)
    assert "/api/health/live" in document["paths"]
    assert "/v1/metrics" not in document["paths"]  # an embedded app serves no ingest by default


def test_the_service_loads_the_otlp_stack_with_its_first_export(tmp_path: Path) -> None:
    report = run_child("standalone", tmp_path)
    assert report["at_start"] == []  # the OTLP blueprint imports the protobuf stack with its first export
    assert report["openapi_status"] == 200
    validate(report["openapi"])
    assert "/v1/metrics" in report["openapi"]["paths"]
    assert report["otlp_status"] == 200, report["otlp_body"]
    assert report["proto_after_otlp"]
    # The metrics export imports prometheus_client when it builds its first families.
    assert report["prometheus_status"] == 200
    assert "centinela_metrics_category_available" in report["prometheus_text"]


FIRST_USE_IN_THREADS = r"""
import json, sys, threading

from flask import Flask

from monitoring.extension import Monitoring
from monitoring.settings import Settings

var_dir, database_url = sys.argv[1:3]
key = "load-on-use-metrics-key-0123456789"
app = Flask("festival")
Monitoring(app, settings=Settings.from_env({"VAR_DIR": var_dir, "DATABASE_URL": database_url, "METRICS_API_KEY": key,
                                            "SCHEDULER_ENABLED": "false", "RATELIMIT_ENABLED": "false"}))
barrier = threading.Barrier(16)
answers = {}


def ask(n):
    client = app.test_client()
    category = "performance" if n % 2 else "no-such-category"
    barrier.wait()
    answer = client.get(f"/api/monitoring/metrics?category={category}", headers={"X-API-Key": key})
    answers[n] = (category, answer.status_code, (answer.get_json() or {}).get("error", {}).get("code"))


threads = [threading.Thread(target=ask, args=(n,)) for n in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
app.extensions["centinela"].shutdown()
print(json.dumps(sorted(answers.values())))
"""


def test_sixteen_threads_building_one_model_at_once_each_get_the_right_answer(tmp_path: Path) -> None:
    """A gthread worker's first requests may build a deferred model in several threads at once
    (pydantic 2.14 locks model_rebuild; pyproject asks for it)."""
    database_url = f"sqlite:///{tmp_path / 'centinela.db'}"
    store = Store(database_url)
    store.migrate()
    store.dispose()
    result = subprocess.run([sys.executable, "-c", FIRST_USE_IN_THREADS, str(tmp_path / "var"), database_url],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    refused = [answer for answer in answers if answer[0] == "no-such-category"]
    served = [answer for answer in answers if answer[0] == "performance"]
    assert len(refused) == len(served) == 8
    assert {(status, code) for _category, status, code in served} == {(200, None)}
    assert len({(status, code) for _category, status, code in refused}) == 1
    assert refused[0][1] == 400


def test_every_deferred_model_builds() -> None:
    """Deferred, a model that cannot be built would fail at its endpoint's first request, not at
    import: build each one here (fresh copies of the classes are not needed: rebuilding is idempotent)."""
    from monitoring.extension import API_MODULES

    for module in API_MODULES:
        importlib.import_module(module)
    models = centinela_models()
    assert len(models) > 100
    for model in models:
        model.model_rebuild()  # raises on a model that does not build
        assert model.__pydantic_complete__, model.__qualname__
