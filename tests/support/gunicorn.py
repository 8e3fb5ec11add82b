"""A real gunicorn, started the way `make run` starts it, for tests about workers and logs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.receiver import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class GunicornServer:
    def __init__(self, workdir: Path, env: dict[str, str], workers: int, args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.args = args
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "gunicorn.log"
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(workers),
            "VAR_DIR": str(self.workdir / "var"),
            "DATABASE_URL": f"sqlite:///{self.workdir / 'var' / 'centinela.db'}",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py", *self.args, "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/api/health/live", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)  # waiting for a real process to bind its port
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> float:
        """SIGTERM and wait; the seconds it took to exit (0 if it was not running)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self._log.close()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group: no flush, no clean exit."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        self._log.close()
