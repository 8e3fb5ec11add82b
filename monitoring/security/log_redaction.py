"""Log records pass the PII sanitiser before a handler writes them: a ``logging.Filter``.

Where it is attached:

* ``RedactingGunicornLogger`` (the service's ``logger_class`` in gunicorn.conf.py) puts it on
  gunicorn's access and error handlers, and gives the root logger one filtered handler
  beside them, so the service's own log lines and every library's are redacted: an
  ``?api_key=...`` in an access-log line, an e-mail in an exception message or a card
  number in a traceback never reach a log file.
* ``Monitoring(app)`` puts it on Centinela's own loggers (``monitoring.*``), whatever
  handlers the host configured. It changes nothing else of the host's logging: a host that
  wants its whole log redacted adds ``RedactingFilter()`` to its own handlers (or uses the
  gunicorn logger class), as the README says.
"""
from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any
from urllib.parse import unquote

from monitoring.security.pii import is_sensitive_key, sanitise_text

PACKAGE_LOGGER = "monitoring"

_QUERY_PARAMETER = re.compile(r"([?&;])([^=&;\s\"#]{1,100})=([^&;\s\"#]*)")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029\x85]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}" if ord(char) < 256
                                                           else f"\\u{ord(char):04x}")


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """Control characters written as escapes: one record is one line, and nobody can forge another."""
    return (_CONTROL_BUT_NEWLINE if keep_newlines else _LINE_BREAKING).sub(_escape, text)


def _redact_query_values(message: str) -> str:
    """``?api%5Fkey=SECRET`` -> ``?api%5Fkey=[redacted]``, in place and still percent-encoded:
    Werkzeug decodes the name and accepts the key, but the line must stay as the client sent it
    (decoding it would turn ``%0a`` into a real line break)."""

    def redact(match: re.Match[str]) -> str:
        separator, name, _value = match.groups()
        return f"{separator}{name}=[redacted]" if is_sensitive_key(unquote(name)) else match.group(0)

    return _QUERY_PARAMETER.sub(redact, message)


def redact_message(message: str) -> str:
    """A log message as written: secrets in query strings and text masked, controls escaped."""
    return escape_controls(sanitise_text(_redact_query_values(message)))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) through the sanitiser; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_centinela_redacted", False):
            return True  # one record may pass several filtered handlers
        try:
            record.msg = redact_message(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[0] is not None:
                # Format the traceback now so the formatter prints our sanitised copy; a traceback
                # has line breaks of its own, any other control character is escaped.
                text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
                record.exc_text = escape_controls(sanitise_text(text), keep_newlines=True)
                record.exc_info = None
        except Exception:  # a log call must never fail because of redaction
            record.msg, record.args = "(log message withheld: redaction failed)", None
        record._centinela_redacted = True
        return True


def redact_package_loggers() -> None:
    """Attach the filter to Centinela's own loggers (idempotent; loggers are the process's anyway)."""
    manager = logging.Logger.manager
    names = [PACKAGE_LOGGER] + [
        name for name in list(manager.loggerDict) if name.startswith(PACKAGE_LOGGER + ".")
    ]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def _gunicorn_logger_class() -> Any:
    from gunicorn.glogging import Logger

    class RedactingGunicornLogger(Logger):
        """gunicorn's logger with every handler filtered, and a filtered root handler for the app."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                        handler.addFilter(RedactingFilter())
            root = logging.getLogger()
            if not any(getattr(h, "_centinela", False) for h in root.handlers):
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(logging.Formatter(self.error_fmt, self.datefmt))
                handler.addFilter(RedactingFilter())
                handler._centinela = True  # type: ignore[attr-defined]
                root.addHandler(handler)

    return RedactingGunicornLogger


def __getattr__(name: str) -> Any:
    # gunicorn is imported only when its logger class is asked for (a host may run another server).
    if name == "RedactingGunicornLogger":
        return _gunicorn_logger_class()
    raise AttributeError(name)
