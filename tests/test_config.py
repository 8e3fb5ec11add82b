"""Configuration: every bad value stops start-up with one line naming the variable."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.settings import VARIABLES, ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_system_description() -> None:
    settings = Settings.from_env({})
    assert settings.payment_failure_threshold == 0.01
    assert settings.db_response_threshold_ms == 1000
    assert settings.api_response_threshold_ms == 2000
    assert settings.memory_usage_threshold == 80
    assert settings.error_rate_threshold == 0.05
    assert settings.metrics_flush_interval == 5
    assert settings.health_check_interval == 30
    assert settings.alert_evaluation_interval == 15
    assert (settings.metrics_retention_days, settings.alert_retention_days) == (30, 90)
    assert (settings.incident_retention_days, settings.audit_retention_days) == (365, 730)
    assert settings.ratelimit_storage_uri == "memory://"
    assert settings.cors_origins == ()
    assert settings.trusted_proxies == 0
    assert settings.zone == "default"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 2)
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("var/centinela.db")


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("ERROR_RATE_THRESHOLD", "abc", "expected a number between 0 and 1"),
        ("ERROR_RATE_THRESHOLD", "1.5", "expected a number between 0 and 1"),
        ("PAYMENT_FAILURE_THRESHOLD", "-0.1", "expected a number between 0 and 1"),
        ("MEMORY_USAGE_THRESHOLD", "120", "expected a number between 0 and 100"),
        ("DB_RESPONSE_THRESHOLD", "0", "expected a positive number"),
        ("API_RESPONSE_THRESHOLD", "fast", "expected a positive number"),
        ("PORT", "-1", "expected a whole number from 1 to 65535"),
        ("PORT", "80.5", "expected a whole number from 1 to 65535"),
        ("WORKERS", "0", "expected a whole number from 1 to 64"),
        ("DATABASE_URL", "mysql://root@localhost/db", "expected a sqlite:///path or postgresql://"),
        ("METRICS_FLUSH_INTERVAL", "nan", "expected a positive number"),
        ("HEALTH_CHECK_INTERVAL", "-5", "expected a positive number"),
        ("METRICS_RETENTION_DAYS", "forever", "expected a whole number"),
        ("RATELIMIT_STORAGE_URI", "postgres://x", "expected memory:// or redis://"),
        ("RATELIMIT_DEFAULT", "lots", "expected a rate limit"),
        ("CORS_ORIGINS", "shop.example", "expected a comma-separated list of origins"),
        ("TRUSTED_PROXIES", "-1", "expected a whole number from 0 to 10"),
        ("ZONE", "eu west", "expected a short name"),
        ("ALERT_WEBHOOK_URL", "ftp://hooks", "expected an http:// or https:// URL"),
        ("SCHEDULER_ENABLED", "maybe", "expected true or false"),
        ("HEALTH_CHECKS", "[{", "expected a JSON list"),
    ],
)
def test_each_bad_value_is_refused_with_the_variable_named(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}=")
    assert expected in message
    assert "\n" not in message


def test_secrets_are_not_echoed_in_config_errors_or_repr() -> None:
    settings = Settings.from_env({"ADMIN_API_KEY": "s3cr3t-admin-value", "SENTRY_DSN": "https://k@sentry/1"})
    assert "s3cr3t-admin-value" not in repr(settings)
    assert "https://k@sentry/1" not in repr(settings)


def test_postgres_alias_is_normalised() -> None:
    assert Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url == "postgresql://u@h/db"


def test_a_bad_value_stops_gunicorn_with_one_clear_line(tmp_path: Path) -> None:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    result = subprocess.run(
        [str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ERROR_RATE_THRESHOLD": "abc", "VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["centinela: configuration error: ERROR_RATE_THRESHOLD='abc': expected a number between 0 and 1"]


def test_readme_documents_every_variable_with_its_default() -> None:
    readme = (ROOT / "docs" / "configuration.md").read_text()
    for var in VARIABLES:
        row = re.search(rf"^\| `{var.name}` \| ([^|]*) \|", readme, re.M)
        assert row, f"docs/configuration.md has no table row for {var.name}"
        shown = row.group(1).strip().strip("`")
        assert shown == (var.default or "(unset)") or (not var.default and shown), (var.name, shown)
