"""The dashboard: one document with what an operator looks at (``data``), the time series it
charts (``series``), the signed session of the HTML page (``session``), and the same views
as Grafana and Datadog dashboard documents (``grafana``, ``datadog``).

Nothing here computes a figure another feature already computes: the document is assembled
from the registered metric category providers and the features' public query functions.
"""
