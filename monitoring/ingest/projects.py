"""SENTRY_PROJECTS: which service each Sentry project number reports as.

A DSN ends in a project (``http://KEY@centinela:8000/1``); the SDK posts to
``/api/1/envelope/``. ``{"1": "shop", "2": "shop-web"}`` names the service of each project;
a project not listed is answered 404, as Sentry answers an unknown project. Standard library
only: settings validate it at start-up without importing the decoders.
"""
from __future__ import annotations

import json
import re

MAX_PROJECTS = 100
MAX_SERVICE_NAME_CHARS = 100
_PROJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SERVICE_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")


def parse_sentry_projects(raw: str) -> dict[str, str]:
    """``{"project": "service"}`` from its JSON text; ValueError saying what is expected."""
    expected = 'expected a JSON object of project -> service name, such as {"1": "shop"}'
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        raise ValueError(expected) from None
    if not isinstance(value, dict) or len(value) > MAX_PROJECTS:
        raise ValueError(f"{expected}, with at most {MAX_PROJECTS} projects")
    projects: dict[str, str] = {}
    for project, service in value.items():
        if not _PROJECT_RE.match(project):
            raise ValueError(f"{expected}; project {project[:70]!r} is not letters, digits, '-' or '_'")
        if not isinstance(service, str) or not service.strip() or len(service) > MAX_SERVICE_NAME_CHARS \
                or not _SERVICE_RE.match(service):
            raise ValueError(f"{expected}; the service of project {project!r} must be a name of 1 to "
                             f"{MAX_SERVICE_NAME_CHARS} characters")
        projects[project] = service.strip()
    return projects
