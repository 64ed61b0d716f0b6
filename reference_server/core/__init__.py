"""The charging service's decisions, without I/O.

The service (``reference_server.service``) is a trio shell around this package:
it reads what a decision needs from the database, calls the core, commits the
:class:`~reference_server.core.changes.Changes` the core filled in, then carries
out their intents (sending commands, answering cards, closing connections).

The three parts own their state and depend one way, orders → commands → devices:
an order uses its device and its commands, a command its device; devices know of
neither. Nothing here awaits, imports trio, or reaches the gateway or the API,
so the decisions can be driven by plain function calls in tests.
"""
