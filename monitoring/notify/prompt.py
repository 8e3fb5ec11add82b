"""Delivery at once: the process that commits a notification sends it, instead of waiting for
the leader's next delivery run (NOTIFY_DELIVERY_INTERVAL).

The engine hands over the idempotency keys of the rows a transaction wrote once that
transaction has committed. Each row is claimed exactly as the delivery job claims it (a
conditional UPDATE from pending to sending), so whichever process gets there first sends it
and nobody sends it twice; a row that fails goes back to pending with its backoff and is the
delivery job's from then on. This works the same on SQLite and PostgreSQL, on one host or
many, and keeps working while the leader is being replaced: a notice committed by any live
process goes out at once.

Sends run on a small per-process thread pool, one row per task, so a request that triggers
an alert does not wait for receivers and one hanging receiver does not hold up the others.
The pool is created on first use in each process (never inherited across gunicorn's fork).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

MAX_SENDERS = 8


class PromptDelivery:
    """``outbox.prompt``: send committed rows now, in the background (or in the caller's thread)."""

    def __init__(self, outbox: Any, background: bool = True, max_senders: int = MAX_SENDERS) -> None:
        self.outbox = outbox
        self.background = background
        self.max_senders = max_senders
        self._pool: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def __call__(self, keys: Sequence[str]) -> None:
        if not self.background:
            for key in keys:
                self._send(key)
            return
        pool = self._pool_of_this_process()
        for key in keys:
            pool.submit(self._send, key)

    def _send(self, key: str) -> None:
        try:
            self.outbox.deliver_key(key)
        except Exception:  # the delivery job retries whatever this did not finish
            log.exception("prompt delivery of %s failed", key)

    def _pool_of_this_process(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        with self._lock:
            if self._pool is None or self._pid != pid:
                self._pool = ThreadPoolExecutor(max_workers=self.max_senders, thread_name_prefix="notify-prompt")
                self._pid = pid
            return self._pool

    def shutdown(self, wait: bool = True) -> None:
        """Let the sends in flight finish (each is bounded by NOTIFY_TIMEOUT), then stop the pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=wait)
