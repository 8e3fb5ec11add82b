"""Every log record passes the PII sanitiser before any handler sees it.

Installed as the logging record factory, so it covers our loggers, gunicorn's access and
error logs, and libraries alike: an ``?api_key=...`` in an access-log line, an e-mail in
an exception message or a card number in a traceback never reach a log file.
"""
from __future__ import annotations

import logging
import traceback
from urllib.parse import unquote
from typing import Any

from monitoring.errors.sanitiser import sanitise_text

_installed = False


def _sanitise_with_decoding(message: str) -> str:
    """Sanitise, also seeing through percent-encoding: Werkzeug decodes ``?api%5Fkey=...`` into
    ``api_key`` and accepts it, so the raw request line in the access log must not keep it."""
    if "%" in message:
        decoded = unquote(message)
        if decoded != message and sanitise_text(decoded) != decoded:
            return sanitise_text(decoded)
    return sanitise_text(message)


def install_log_redaction() -> None:
    """Wrap the current record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    base_factory = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        try:
            record.msg = _sanitise_with_decoding(record.getMessage())
            record.args = None
            if record.exc_info and record.exc_info[0] is not None:
                # Format the traceback now so the formatter prints our sanitised copy.
                record.exc_text = sanitise_text("".join(traceback.format_exception(*record.exc_info)).rstrip())
                record.exc_info = None
        except Exception:  # a log call must never fail because of redaction
            record.msg, record.args = "(log message withheld: redaction failed)", None
        return record

    logging.setLogRecordFactory(redacting_factory)
    _installed = True
