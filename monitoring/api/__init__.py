"""HTTP adapters: one blueprint module per endpoint family, each thin over the domain modules.

Every module has ``bp`` (a ``centinela_blueprint``) and ``OPENAPI_PATHS`` (its part of the
OpenAPI document); ``monitoring.extension.API_MODULES`` lists them. What they serve is built
in the composition root (``monitoring.services``); a view only reads from it.
"""
