"""HTTP adapters: one blueprint module per endpoint family, each thin over the domain modules.

The routes of every view module are declared in ``monitoring.api.routes``, which builds their
blueprints without importing the module: a view module loads with the first request to one of
its routes. The ingest modules (OTLP, the Sentry protocol) keep their own ``bp``. Endpoints are
declared with ``@endpoint`` (``monitoring.api.contract``), from which the OpenAPI document is
generated. A route that is not a declared view (the dashboard's static files, the binary OTLP
and Sentry bodies) adds its entry in the module's ``OPENAPI_PATHS``.
``monitoring.extension.API_MODULES`` lists the modules. What they serve is built in the
composition root (``monitoring.services``); a view only reads from it.
"""
