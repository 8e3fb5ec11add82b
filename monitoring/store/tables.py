"""Every module that declares tables, imported so that ``metadata`` knows them all before migrate().

Tables live beside the schema, one module per domain; each adds its import here.
"""
from monitoring.store import (
    alerts_tables,  # noqa: F401
    business_tables,  # noqa: F401
    errors_tables,  # noqa: F401
    health_tables,  # noqa: F401
    metrics_tables,  # noqa: F401
    notify_tables,  # noqa: F401
    schema,  # noqa: F401
    uptime_tables,  # noqa: F401
)
