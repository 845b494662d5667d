"""A do-nothing OTLP/HTTP collector for the tracing scenario: answers every POST 200.

``python -m bench.otlp_sink --port N``; ``GET /health`` for the harness; ``GET /stats``
says how many export requests and bytes it took (to check spans really left lmstream).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["main"]

_received = {"requests": 0, "bytes": 0}


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        _received["requests"] += 1
        _received["bytes"] += length
        self._answer(b"")

    def do_GET(self) -> None:
        self._answer(json.dumps(_received).encode() if self.path == "/stats" else b"ok")

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), _Sink).serve_forever()


if __name__ == "__main__":
    main()
