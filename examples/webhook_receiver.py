"""A webhook receiver for platform integrators, with nothing but the standard
library's HTTP server around :func:`bkvcodec.verify_webhook`.

Run it with the secret the server was given as ``webhook_secret``::

    IOT_WEBHOOK_SECRET=s3cret python examples/webhook_receiver.py --port 8888

and start the server with ``--webhook-url http://HOST:8888/webhook``. Each delivery
is verified (a bad signature gets ``401 {"error": "invalid signature"}``), printed
once and answered ``200 {"success": true}``. The server retries anything else,
so an event can arrive more than once: drop repeats by ``event_id``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bkvcodec import SignatureError, verify_webhook


def make_server(secret: str, port: int, host: str = "") -> ThreadingHTTPServer:
    # Event ids already handled. Kept in memory here; production code stores them
    # in its database, in the same transaction as the work the event causes.
    seen: set[str] = set()
    lock = threading.Lock()

    class WebhookHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # The signature covers the path the server posted to, without the query.
            path = urllib.parse.urlsplit(self.path).path
            try:
                event = verify_webhook(secret, "POST", path, dict(self.headers.items()),
                                       body, now=time.time())
            except SignatureError:
                self.answer(401, {"error": "invalid signature"})
                return
            with lock:
                is_new = event.event_id not in seen
                seen.add(event.event_id)
                if is_new:
                    envelope = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
                    print(f"[{time.strftime('%H:%M:%S')}] event received: "
                          f"{event.event_type}\n{envelope}", flush=True)
            # A repeat is answered 200 too, or the server keeps retrying it.
            self.answer(200, {"success": True})

        def answer(self, status: int, document: dict[str, object]) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return ThreadingHTTPServer((host, port), WebhookHandler)


def main() -> None:
    parser = argparse.ArgumentParser(description="Verify and print the server's webhooks.")
    parser.add_argument("--secret", default=os.environ.get("IOT_WEBHOOK_SECRET"),
                        help="the webhook secret (default: $IOT_WEBHOOK_SECRET)")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    if not args.secret:
        parser.error("give the webhook secret with --secret or IOT_WEBHOOK_SECRET")
    with make_server(args.secret, args.port) as server:
        print(f"listening on port {server.server_address[1]}")
        server.serve_forever()


if __name__ == "__main__":
    main()
