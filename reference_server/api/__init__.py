# The third-party HTTP API of the reference server (api.md §6), one job per module:
#   routes.py       the route table: every (method, path), its checks and shapes
#   app.py          create_app(): the table as Starlette routes, the request pipeline
#   handlers.py     one function per route
#   auth.py         API keys, request signatures, nonces (§6.1)
#   ratelimit.py    per-key and per-device token buckets (§6.2)
#   idempotency.py  Idempotency-Key answers for POST …/charge (§6.3)
#   fields.py       declarative field and query-parameter specs (check + JSON Schema)
#   parse.py        the API's bodies and query parameters → typed requests, or 400
#   views.py        records → response JSON (§3 units)
#   envelope.py     the response envelope and the HTTP-only errors (§6)
#   openapi.py      the OpenAPI 3.1 document, from the route table
#   context.py      the dependencies every handler shares
#   serve.py        serving with hypercorn's trio worker
"""The reference server's HTTP API: :func:`create_app`, :func:`serve_http` and
:func:`openapi_document`."""
from __future__ import annotations

from .app import create_app, forwarded_call_runner
from .context import ApiContext, ChargingOperations
from .openapi import openapi_document
from .routes import API_PREFIX, ROUTES, RouteSpec
from .serve import serve_http

__all__ = ["API_PREFIX", "ROUTES", "ApiContext", "ChargingOperations", "RouteSpec",
           "create_app", "forwarded_call_runner", "openapi_document", "serve_http"]
