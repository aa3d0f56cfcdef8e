"""A scaffolded product's stand-in until the team's own image replaces it: it serves, so the pod starts.

Answers GET /isAlive/ (the declared health path) and every POST with a small JSON body naming
itself; anything else is a 404. Replace the declaration's image, command and files with the
product's own. No state, no files written.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRODUCT = os.environ.get("STAND_IN_PRODUCT", "stand-in")


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"alive": True} if self.path.rstrip("/") == "/isAlive" else {"error": "not found"})

    def do_POST(self) -> None:
        self.rfile.read(min(int(self.headers.get("Content-Length", 0) or 0), 1 << 20))
        self._send(200, {"product": PRODUCT, "standIn": True})


if __name__ == "__main__":
    # All interfaces: in a pod, the sidecar reaches the app on the pod IP.
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "12000"))), Handler).serve_forever()
