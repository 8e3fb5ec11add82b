"""Configuration: every bad value stops start-up with one line naming the variable."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitoring.settings import VARIABLES, ConfigError, Settings, configuration_table

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


def _configuration_document() -> tuple[Path, str]:
    """The file that holds the configuration table (the README, or docs/ once it moves there)."""
    for candidate in (ROOT / "docs" / "configuration.md", ROOT / "README.md"):
        if candidate.exists() and "| variable | default | meaning |" in candidate.read_text():
            return candidate, candidate.read_text()
    raise AssertionError("no document holds the configuration table")


def test_the_configuration_table_is_the_one_generated_from_the_declarations() -> None:
    where, document = _configuration_document()
    rows = []
    for line in document[document.index("| variable | default | meaning |"):].splitlines():
        if not line.startswith("|"):
            break
        rows.append(f"{line}\n")
    shown = "".join(rows)
    assert shown == configuration_table(), (
        f"{where.name}'s configuration table is out of date: paste the output of "
        "`python -m monitoring.settings table` over it")


def test_readme_documents_every_variable_with_its_default() -> None:
    _, document = _configuration_document()
    for var in VARIABLES:
        row = re.search(rf"^\| `{var.name}` \| ([^|]*) \|", document, re.M)
        assert row, f"the configuration table has no row for {var.name}"
        shown = row.group(1).strip().strip("`")
        assert shown == (var.default or "(unset)") or (not var.default and shown), (var.name, shown)


# --- one declaration per setting ---------------------------------------------------------------

# A valid text for every variable whose default is empty (the others are read from their default).
EXAMPLES = {
    "DATABASE_URL": "postgresql://centinela:s3cr3t-db@db.example/centinela",
    "RATELIMIT_STORAGE_URI": "redis://:s3cr3t-redis@127.0.0.1:6379/0",  # secret, though it has a default
    "VAR_DIR": "/tmp/centinela-example",
    "CORS_ORIGINS": "https://shop.example,https://admin.shop.example",
    "URL_PREFIX": "/_centinela",
    "DASHBOARD_PUBLIC": "false",
    "METRICS_API_KEY": "m" * 32,
    "ADMIN_API_KEY": "a" * 32,
    "USER_ID_HASH_KEY": "u" * 32,
    "SENTRY_DSN": "https://public@o0.ingest.sentry.io/1",
    "SENTRY_RELEASE": "shop@1.2.3",
    "ALERT_WEBHOOK_URL": "https://hooks.example/alerts",
    "ESCALATION_WEBHOOK_URL": "https://hooks.example/escalations",
    "ALERT_WEBHOOK_KIND": "slack",
    "ESCALATION_WEBHOOK_KIND": "pagerduty",
    "ALERT_WEBHOOK_SECRET": "w" * 24,
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "PAGERDUTY_ROUTING_KEY": "r" * 32,
    "NOTIFY_ROUTES": '{"critical": ["pagerduty", "slack"]}',
    "NOTIFY_ESCALATION_CHANNEL": "pagerduty",
    "NOTIFY_FALLBACK_CHANNEL": "slack",
    "NOTIFY_EXTERNAL_URL": "https://centinela.example",
    "SMTP_URL": "smtps://alerts:pw@smtp.example:465",
    "ALERT_EMAIL_FROM": "Centinela <alerts@example.com>",
    "ALERT_EMAIL_TO": "oncall@example.com,ops@example.com",
    "APPRISE_URLS": "ops=json://127.0.0.1:9/notify",
    "ALERT_GROUP_WAIT": "30s",
    "ALERT_GROUP_INTERVAL": '{"high": "1m"}',
    "ALERT_ESCALATION_AFTER": '{"high": "15m", "low": "none"}',
    "STRIPE_SECRET_KEY": "sk_test_" + "s" * 24,
    "BREVO_API_KEY": "xkeysib-" + "b" * 24,
    "HEALTH_CHECKS": '[{"name": "search", "type": "http", "url": "https://search.example/health"}]',
}


def _example(var: Any) -> str:
    return var.default or EXAMPLES[var.name]


def test_every_setting_is_declared_once_with_its_own_field_and_variable() -> None:
    assert len({v.name for v in VARIABLES}) == len({v.attr for v in VARIABLES}) == len(VARIABLES)
    for section in dataclasses.fields(Settings):
        declared = [v.attr for v in VARIABLES if v.section == section.name]
        assert declared == [f.name for f in dataclasses.fields(getattr(Settings.from_env({}), section.name))]
    assert all(var.default or var.name in EXAMPLES for var in VARIABLES)


def test_each_section_holds_its_settings_and_the_flat_spelling_reads_the_same_value() -> None:
    settings = Settings.from_env({var.name: _example(var) for var in VARIABLES})
    for var in VARIABLES:
        assert getattr(settings, var.attr) == getattr(getattr(settings, var.section), var.attr), var.name
    assert settings.server.port == settings.port == 8000
    assert settings.notify.smtp_url == "smtps://alerts:pw@smtp.example:465"
    with pytest.raises(AttributeError):
        settings.no_such_setting  # noqa: B018


@pytest.mark.parametrize("var", VARIABLES, ids=lambda var: var.name)
def test_a_text_override_is_read_exactly_like_the_environment(var: Any) -> None:
    from_env = Settings.from_env({var.name: _example(var)})
    by_field = Settings.from_env({}, **{var.attr: _example(var)})
    by_variable = Settings.from_env({}, **{var.name: _example(var)})
    assert getattr(from_env, var.attr) == getattr(by_field, var.attr) == getattr(by_variable, var.attr)


# Values already parsed whose typed form is not what the parser reads back (a definition object).
NOT_TYPED = {"HEALTH_CHECKS", "APPRISE_URLS", "NOTIFY_ROUTES"}


@pytest.mark.parametrize("var", [v for v in VARIABLES if v.parser.check is not None and v.name not in NOT_TYPED],
                         ids=lambda var: var.name)
def test_a_typed_override_goes_through_the_same_rule(var: Any) -> None:
    value = getattr(Settings.from_env({var.name: _example(var)}), var.attr)
    assert getattr(Settings.from_env({}, **{var.attr: value}), var.attr) == value


@pytest.mark.parametrize(
    "override, value, expected",
    [
        ("port", 0, "port (PORT)=0: expected a whole number from 1 to 65535"),
        ("port", "80.5", "port (PORT)='80.5': expected a whole number from 1 to 65535"),
        ("PORT", 70000, "PORT=70000: expected a whole number from 1 to 65535"),
        ("workers", 2.5, "workers (WORKERS)=2.5: expected a whole number from 1 to 64"),
        ("workers", True, "workers (WORKERS)=True: expected a whole number from 1 to 64"),
        ("error_rate_threshold", 1.5, "error_rate_threshold (ERROR_RATE_THRESHOLD)=1.5: expected a number between 0 and 1"),
        ("error_rate_threshold", float("nan"), "expected a number between 0 and 1"),
        ("db_response_threshold_ms", -1, "db_response_threshold_ms (DB_RESPONSE_THRESHOLD)=-1: expected a positive number"),
        ("health_check_interval", float("inf"), "expected a positive number"),
        ("scheduler_enabled", "maybe", "scheduler_enabled (SCHEDULER_ENABLED)='maybe': expected true or false"),
        ("ratelimit_enabled", 1, "ratelimit_enabled (RATELIMIT_ENABLED)=1: expected true or false"),
        ("url_prefix", "no-slash", "url_prefix (URL_PREFIX)='no-slash': expected a path such as /_centinela"),
        ("cors_origins", ["shop.example"], "expected a comma-separated list of origins"),
        ("database_url", "mysql://root@db/x", "database_url (DATABASE_URL)=(hidden): expected a sqlite:///path"),
        ("alert_repeat_interval", "10s", "ALERT_REPEAT_INTERVAL)='10s': expected a duration"),
        ("alert_error_rate_window", 5, "alert_error_rate_window (ALERT_ERROR_RATE_WINDOW)=5: expected a duration"),
        ("ratelimit_default", 300, "ratelimit_default (RATELIMIT_DEFAULT)=300: expected the value as text"),
        ("admin_api_key", 12345, "admin_api_key (ADMIN_API_KEY)=(hidden): expected the value as text"),
        ("porte", 8080, "porte: no such setting"),
    ],
)
def test_a_bad_override_is_refused_naming_the_setting(override: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, **{override: value})
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_service_and_create_app_overrides_are_parsed_too() -> None:
    from config import service_settings  # what create_app({...}) and gunicorn.conf.py call

    assert service_settings({}, port="9000", WORKERS=3).server == Settings.from_env({"PORT": "9000", "WORKERS": "3"}).server
    with pytest.raises(ConfigError, match=r"^workers \(WORKERS\)=0: expected a whole number from 1 to 64$"):
        service_settings({}, workers=0)


def test_replace_is_parsed_like_an_override() -> None:
    settings = Settings.from_env({})
    assert settings.replace(url_prefix="/_centinela/").url_prefix == "/_centinela"
    assert settings.replace(PORT="9000").server.port == 9000
    assert settings.replace(port=9000).workers == settings.workers
    with pytest.raises(ConfigError, match=r"^url_prefix \(URL_PREFIX\)='x': expected a path"):
        settings.replace(url_prefix="x")


@pytest.mark.parametrize("var", [v for v in VARIABLES if v.secret], ids=lambda var: var.name)
def test_a_secret_is_never_in_a_repr_the_description_or_an_error(var: Any) -> None:
    value = EXAMPLES[var.name]
    settings = Settings.from_env({var.name: value})
    shown = [repr(settings), repr(getattr(settings, var.section)), str(settings), repr(settings.describe())]
    assert settings.describe()[var.name] == "(hidden)"
    assert not any(value in text for text in shown)
    bad = "not a valid \x00 " + value  # refused by every parser, or kept as text by the plain ones
    for attempt in ({var.name: bad}, {}):
        try:
            Settings.from_env(attempt, **({} if attempt else {var.attr: 12345}))
        except ConfigError as error:
            assert value not in str(error) and "12345" not in str(error) and "(hidden)" in str(error)


def test_the_description_shows_what_is_not_secret() -> None:
    described = Settings.from_env({"PORT": "9000", "CORS_ORIGINS": "https://a.example, https://b.example"}).describe()
    assert described["PORT"] == "9000"
    assert described["CORS_ORIGINS"] == "https://a.example,https://b.example"
    assert described["METRICS_API_KEY"] == ""  # unset: nothing to hide
    assert list(described) == [v.name for v in VARIABLES]
