"""Every module that declares tables, imported so that ``metadata`` knows them all before migrate()."""
from monitoring.store import schema  # noqa: F401
