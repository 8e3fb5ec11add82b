"""gunicorn config for ``bench_soak.py --memory-breakdown`` only (never the service's): where each worker's RSS goes.

Every 30 s each worker appends one line to $SOAK_MEMORY_DIR/<pid>.txt: RSS; SQLite's own heap
(sqlite3_memory_used: page caches, schemas, prepared statements, none of it seen by tracemalloc);
glibc's heap in use and free-but-kept (mallinfo2: free growing while in-use stays flat is
fragmentation, not live objects); Python's allocated blocks; live sqlite3 prepared statements
(each pooled connection caches up to 128); distinct SQL strings this worker has sent.
"""
import ctypes
import gc
import os
import sys
import threading
import time

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    distinct: set[int] = set()

    @event.listens_for(Engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        distinct.add(hash(statement))

    def statements() -> int:
        return sum(1 for o in gc.get_objects() if type(o).__name__ == "Statement" and type(o).__module__ == "sqlite3")

    def sample() -> None:
        path = os.path.join(os.environ["SOAK_MEMORY_DIR"], f"{os.getpid()}.txt")
        started = time.monotonic()
        while True:
            m = libc.mallinfo2()
            line = (f"{time.monotonic() - started:.0f} {_rss_mb():.2f} {sqlite.sqlite3_memory_used() / 2**20:.2f} "
                    f"{m.uordblks / 2**20:.2f} {m.fordblks / 2**20:.2f} {sys.getallocatedblocks()} {statements()} "
                    f"{len(distinct)}\n")
            with open(path, "a") as log:
                log.write(line)
            time.sleep(30)

    threading.Thread(target=sample, daemon=True, name="soak-memory").start()
