"""The layering the design promises, read off the source: it fails the moment a module breaks it.

* Only the HTTP layer (monitoring/api/ and the extension) imports Flask or Werkzeug: every
  feature can be built and driven without an app (see tests/test_services.py).
* Nothing under monitoring/ imports the service's top-level ``config`` (or ``app``/``wsgi``):
  a host app with a config.py of its own embeds Centinela without a clash.
* A blueprint never touches the store's tables: the queries belong in the domain modules
  it adapts.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitoring"
HTTP_LAYER = ("api/", "extension.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_the_package_has_modules_to_check() -> None:
    assert len(MODULES) > 50 and any(relative(p).startswith("api/") for p in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_only_the_http_layer_imports_flask_or_werkzeug(path: Path) -> None:
    if relative(path).startswith(HTTP_LAYER):
        return
    web = sorted(m for m in imported_modules(path) if m.split(".")[0] in ("flask", "werkzeug", "flask_cors"))
    assert not web, f"{relative(path)} imports {web}: domain modules must not depend on Flask"


@pytest.mark.parametrize("path", MODULES, ids=relative)
def test_nothing_in_the_package_imports_the_service_entry_points(path: Path) -> None:
    entry_points = sorted(m for m in imported_modules(path) if m.split(".")[0] in ("config", "app", "wsgi"))
    assert not entry_points, f"{relative(path)} imports {entry_points}"


@pytest.mark.parametrize("path", [p for p in MODULES if relative(p).startswith("api/")], ids=relative)
def test_blueprints_never_import_store_tables(path: Path) -> None:
    tables = sorted(
        m for m in imported_modules(path)
        if m.startswith("monitoring.store.") and (m.split(".")[2].endswith("tables") or m.split(".")[2] == "schema")
    )
    assert not tables, f"{relative(path)} imports {tables}: table queries belong in the domain modules"


def test_the_checks_catch_a_violation(tmp_path: Path) -> None:
    """The checks above can fail: a module that breaks each rule is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from flask import request\nimport config\n\ndef f():\n    from monitoring.store.alerts_tables import alerts\n")
    modules = imported_modules(bad)
    assert "flask" in modules and "config" in modules and "monitoring.store.alerts_tables" in modules
