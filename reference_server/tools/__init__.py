"""Operator tools that work against a running server through its HTTP API only:
``monitor`` (a live terminal view) and ``batch`` (many orders at once, with a summary)."""
