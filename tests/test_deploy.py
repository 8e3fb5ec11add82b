"""deploy/: the systemd unit passes systemd's own checks, the container file has what it promises,
and the nginx example, run for real in front of a real gunicorn with TRUSTED_PROXIES=1, passes on
the client's address (and only its own hop's), marks the session cookie Secure behind TLS, and
logs no query string."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from tests.conftest import ADMIN_KEY, METRICS_KEY
from tests.support.gunicorn import PROJECT_ROOT
from tests.support.receiver import free_port

DEPLOY = PROJECT_ROOT / "deploy"
UNIT = DEPLOY / "centinela.service"
CONTAINERFILE = DEPLOY / "Containerfile"
NGINX_EXAMPLE = DEPLOY / "nginx" / "centinela.conf"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NGINX = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


# --- systemd -------------------------------------------------------------------------------------


def test_the_unit_runs_unprivileged_hardened_and_restarts() -> None:
    unit = unit_settings()
    assert unit["User"] == ["centinela"] and unit["Group"] == ["centinela"]
    assert unit["EnvironmentFile"] == ["-/etc/centinela/centinela.env"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["2"]  # config errors exit 2
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("CapabilityBoundingSet", "")):
        assert unit[key] == [value], key
    # The one writable place is VAR_DIR, where the store and the generated keys live.
    var_dir = re.search(r"VAR_DIR=(\S+)", " ".join(unit["Environment"])).group(1)  # type: ignore[union-attr]
    assert unit["ReadWritePaths"] == [var_dir] == ["/var/lib/" + unit["StateDirectory"][0]]
    assert unit["ExecStart"] == ["/opt/centinela/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app"]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    # Installed at /opt/centinela; here it is checked against this checkout and its interpreter.
    venv = Path(shutil.which("gunicorn") or "").parent.parent
    gunicorn = venv / "bin" / "gunicorn"
    if not gunicorn.exists():
        import sys

        gunicorn = Path(sys.executable).parent / "gunicorn"
    text = UNIT.read_text().replace("/opt/centinela/.venv/bin/gunicorn", str(gunicorn))
    text = text.replace("/opt/centinela", str(PROJECT_ROOT))
    unit = tmp_path / "centinela.service"
    unit.write_text(text)
    verified = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr
    security = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True,
                              text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for centinela.service: ([0-9.]+)", security.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout[-2000:]
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("Restart=on-failure", "Restart=sometimes"))
    assert "sometimes" in subprocess.run([SYSTEMD_ANALYZE, "verify", str(broken)], capture_output=True,
                                                 text=True, timeout=60).stderr  # the check can fail


# --- the container file ----------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in CONTAINERFILE.read_text().splitlines()
                                             if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def test_the_container_file_is_slim_unprivileged_checked_and_keeps_var_in_a_volume() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim(-\w+)?", steps[0][1])
    users = [args for op, args in steps if op == "USER"]
    assert users == ["centinela"] and [op for op, _ in steps].index("USER") < [op for op, _ in steps].index("CMD")
    env = " ".join(args for op, args in steps if op == "ENV")
    var_dir = re.search(r"VAR_DIR=(\S+)", env).group(1)  # type: ignore[union-attr]
    assert [args for op, args in steps if op == "VOLUME"] == [f'["{var_dir}"]']
    (healthcheck,) = [args for op, args in steps if op == "HEALTHCHECK"]
    assert "/api/health/live" in healthcheck and "--interval=" in healthcheck
    assert [args for op, args in steps if op == "CMD"] == ['["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]']
    # Everything the service imports is copied, and the ignore file lets exactly that through.
    copied = [source for op, args in steps if op == "COPY" for source in args.split()[:-1] if not source.startswith("--")]
    assert all((PROJECT_ROOT / source).exists() for source in copied), copied
    top_level = {p.name for p in PROJECT_ROOT.glob("*.py")} - {"setup.py"}
    assert top_level <= set(copied) | {"conftest.py"}, top_level - set(copied)
    allowed = [line[1:] for line in (DEPLOY / "Containerfile.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    assert sorted(allowed) == sorted(copied)


# --- nginx in front of a real gunicorn -------------------------------------------------------------


@pytest.fixture
def proxied(gunicorn_server: Callable[..., Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    if NGINX is None or OPENSSL is None:
        pytest.skip("nginx or openssl is not installed (Debian packages nginx-light, openssl)")
    server = gunicorn_server(env={"METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "TRUSTED_PROXIES": "1"})
    http, https = free_port(), free_port()
    root = tmp_path / "nginx"
    for sub in ("logs", "temp"):
        (root / sub).mkdir(parents=True)
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=monitor.example.org", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    site = NGINX_EXAMPLE.read_text()
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http};").replace("listen 443 ", f"listen 127.0.0.1:{https} ")
    site = site.replace("/etc/letsencrypt/live/monitor.example.org/fullchain.pem", str(root / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/monitor.example.org/privkey.pem", str(root / "key.pem"))
    site = site.replace("/var/log/nginx/centinela.access.log", str(root / "logs" / "access.log"))
    (root / "centinela.conf").write_text(site)
    temp = root / "temp"
    (root / "nginx.conf").write_text(
        f"user root;\nworker_processes 1;\npid {root / 'nginx.pid'};\nerror_log {root / 'logs' / 'error.log'};\n"
        f"events {{}}\nhttp {{\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
        f"  include {root / 'centinela.conf'};\n}}\n")
    nginx = [str(NGINX), "-p", str(root), "-c", str(root / "nginx.conf")]
    checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*nginx, "-g", "daemon off;"], stderr=subprocess.PIPE)
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    base = f"https://127.0.0.1:{https}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(base + "/api/health/live", verify=False, timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.1)  # a real process binding its port
    try:
        yield {"https": base, "http": f"http://127.0.0.1:{http}", "root": root, "server": server}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_nginx_example_in_front_of_gunicorn(proxied: dict[str, Any]) -> None:
    base = proxied["https"]
    assert requests.get(proxied["http"] + "/api/health/live", allow_redirects=False, timeout=5).status_code == 301

    # A client's own X-Forwarded-For is replaced by nginx: the audit trail has the address nginx saw.
    refused = requests.get(base + "/api/monitoring/metrics", verify=False, timeout=5,
                           headers={"X-API-Key": "wrong-key-0123456789", "X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 401
    audit = requests.get(base + "/api/monitoring/audit?kind=access_denied", verify=False, timeout=5,
                         headers={"X-Admin-Key": ADMIN_KEY}).json()["entries"]
    assert audit and all(e["clientIp"].startswith("127.0.0.") for e in audit), audit
    assert "203.0.113" not in str(audit)

    # Behind TLS the dashboard's session cookie is Secure (X-Forwarded-Proto with TRUSTED_PROXIES=1).
    signed_in = requests.post(base + "/api/monitoring/dashboard/login", data={"key": METRICS_KEY}, verify=False,
                              allow_redirects=False, timeout=5, headers={"Origin": base})
    assert signed_in.status_code == 303, signed_in.text
    assert "Secure" in signed_in.headers["Set-Cookie"] and "HttpOnly" in signed_in.headers["Set-Cookie"]

    # A key sent as a parameter never reaches nginx's log.
    assert requests.get(base + f"/api/monitoring/metrics?api_key={METRICS_KEY}", verify=False,
                        timeout=5).status_code == 200
    time.sleep(0.2)  # nginx writes its log line after the answer
    log = (proxied["root"] / "logs" / "access.log").read_text()
    assert "/api/monitoring/metrics" in log and METRICS_KEY not in log and "api_key" not in log
