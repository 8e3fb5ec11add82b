"""gunicorn settings for Centinela: bind, workers, start-up checks, redacted logs, clean worker exit.

Configuration is validated here, in the master, before any worker starts: a bad value
stops start-up with one line naming the variable.
"""
import sys

from config import ConfigError, Settings

try:
    _settings = Settings.from_env()
except ConfigError as _error:
    print(f"centinela: configuration error: {_error}", file=sys.stderr, flush=True)
    sys.exit(2)

from monitoring.security.log_redaction import install_log_redaction  # noqa: E402

# Redact every log record (access log included) in the master; forked workers inherit it.
install_log_redaction()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "sync"
accesslog = "-"
errorlog = "-"
# The access log line passes the PII sanitiser too (see log_redaction), so "?api_key=..." is
# written as "?api_key=[redacted]" and client addresses are anonymised.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
graceful_timeout = 20
timeout = 30
proc_name = "centinela"
# gunicorn's control socket sits at one fixed path per user: two instances on a host would
# fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server):  # type: ignore[no-untyped-def]
    """Once, in the master: create the schema and any missing keys (announced once) before forking."""
    from monitoring.extension import announce_generated_key
    from monitoring.security.keys import KeyRing
    from monitoring.store.database import Store

    store = Store(_settings.database_url)
    store.migrate()
    store.dispose()
    KeyRing.load(_settings.metrics_api_key, _settings.admin_api_key, _settings.var_dir, announce_generated_key)


def when_ready(server):  # type: ignore[no-untyped-def]
    host = "127.0.0.1" if _settings.host in ("0.0.0.0", "::") else _settings.host
    base = f"http://{host}:{_settings.port}"
    print(
        f"centinela: serving on {base} with {_settings.workers} workers; store {_store_description()}\n"
        f"centinela: dashboard: {base}/api/monitoring/dashboard?format=html\n"
        f"centinela: liveness:  {base}/api/health/live",
        file=sys.stderr,
        flush=True,
    )


def _store_description() -> str:
    from monitoring.store.database import Store

    return Store(_settings.database_url).describe()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Flush this worker's buffered metrics and release the lease before it goes."""
    app = getattr(worker, "wsgi", None)
    monitoring = getattr(app, "extensions", {}).get("centinela") if app is not None else None
    if monitoring is not None:
        monitoring.shutdown()
