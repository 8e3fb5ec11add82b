"""The Centinela service's settings entry point.

The settings themselves live in the package (``monitoring.settings``), so an app that embeds
Centinela never depends on this file; the service adds only where its data lives by default:
``var/`` beside this file, whatever folder ``make run`` was started from.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitoring.settings import VARIABLES, ConfigError, Settings, describe_variables

__all__ = ["PROJECT_ROOT", "VARIABLES", "ConfigError", "Settings", "describe_variables", "service_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent


def service_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """The service's settings: the environment, with the store and keys under this checkout's var/."""
    return Settings.from_env(environ, default_var_dir=PROJECT_ROOT / "var", **overrides)
