"""reference_server: the thin trio server around bkvcodec.

It wires the sans-IO library to device TCP connections, the third-party HTTP API,
SQLite and webhooks (contract: ``shared/spec/api.md``). bkvcodec never imports it.
"""
