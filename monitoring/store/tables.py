"""Every module that declares tables, imported so that ``metadata`` knows them all before migrate().

Tables live beside the schema, one module per domain; each adds its import here.
"""
from monitoring.store import schema  # noqa: F401
from monitoring.store import health_tables  # noqa: F401
from monitoring.store import metrics_tables  # noqa: F401
from monitoring.store import business_tables  # noqa: F401
from monitoring.store import errors_tables  # noqa: F401
from monitoring.store import notify_tables  # noqa: F401
from monitoring.store import uptime_tables  # noqa: F401
from monitoring.store import alerts_tables  # noqa: F401
