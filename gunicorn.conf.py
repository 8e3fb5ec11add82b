"""gunicorn settings for the Centinela service: bind, workers, start-up checks, redacted logs,
the scheduler started in each worker, clean worker exit.

Configuration is validated here, in the master, before any worker starts: a bad value
stops start-up with one line naming the variable. So does a port in use (PORT), and, in
``on_starting``, a store (DATABASE_URL) or shared rate-limit storage (RATELIMIT_STORAGE_URI)
that does not answer: one line naming the variable and the address, password hidden, exit 2.
"""
import sys

from config import ConfigError, service_settings

try:
    _settings = service_settings()
except ConfigError as _error:
    print(f"centinela: configuration error: {_error}", file=sys.stderr, flush=True)
    sys.exit(2)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "sync"
accesslog = "-"
errorlog = "-"
# Every handler gunicorn sets up (and one for the app's own loggers) passes the PII sanitiser,
# so "?api_key=..." is written as "?api_key=[redacted]" and client addresses are anonymised.
logger_class = "monitoring.security.log_redaction.RedactingGunicornLogger"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
graceful_timeout = 20
timeout = 30
proc_name = "centinela"
# gunicorn's control socket sits at one fixed path per user: two instances on a host would
# fight over it, and nothing here uses it.
control_socket_disable = True


def _port_free() -> bool:
    """Whether HOST:PORT can be bound: asked before anything else, so a second `make run` on one
    port says so in one line, before it touches the store."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in _settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((_settings.host, _settings.port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


if not _port_free():
    print(
        f"centinela: port {_settings.port} on {_settings.host} is already in use (another Centinela?): "
        f"stop it, or set PORT to a free port, e.g. PORT={_settings.port + 1} make run",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(2)


def on_starting(server):  # type: ignore[no-untyped-def]
    """Once, in the master: check that the store and the rate-limit storage answer, create the
    schema and any missing keys (announced once), before forking."""
    from monitoring.dependencies import DependencyUnavailable, check_rate_limit_storage, check_store
    from monitoring.security.keys import KeyRing
    from monitoring.security.rate_limits import RateLimits
    from monitoring.services import announce_generated_key
    from monitoring.store.database import Store

    store = Store(_settings.database_url)
    try:
        check_store(store)
        limits = RateLimits.from_settings(_settings)
        # With RATELIMIT_FAIL_OPEN=true each worker says so itself, where the limits are applied.
        check_rate_limit_storage(limits, _settings.ratelimit_storage_uri, _settings.ratelimit_fail_open, warn=False)
    except DependencyUnavailable as error:
        print(f"centinela: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    store.migrate()
    store.dispose()
    KeyRing.load(_settings.metrics_api_key, _settings.admin_api_key, _settings.var_dir, announce_generated_key)


def when_ready(server):  # type: ignore[no-untyped-def]
    host = "127.0.0.1" if _settings.host in ("0.0.0.0", "::") else _settings.host
    base = f"http://{host}:{_settings.port}{_settings.url_prefix}"
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


def _extension(worker):  # type: ignore[no-untyped-def]
    app = getattr(worker, "wsgi", None)
    return getattr(app, "extensions", {}).get("centinela") if app is not None else None


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Start this worker's scheduler now (threads do not survive the fork), not on its first request."""
    monitoring = _extension(worker)
    if monitoring is not None:
        monitoring.start()


def worker_exit(server, worker):  # type: ignore[no-untyped-def]
    """Flush this worker's buffered metrics and release the lease before it goes."""
    monitoring = _extension(worker)
    if monitoring is not None:
        monitoring.shutdown()
