"""A local webhook receiver for the demo: verifies each POST with the `standardwebhooks` package, deduplicates by
webhook-id, and appends every delivery it verified to --log as one JSON line.

The secrets (whsec_…, one a line) are read from --secrets at each request, so they may be written after it starts.
Writes the port it listens on to --port-file once it is ready; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import threading
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 1_000_000))
            headers = {key.lower(): value for key, value in self.headers.items()}
            secrets = args.secrets.read_text(encoding="utf-8").split() if args.secrets.exists() else []
            payload = None
            for secret in secrets:
                try:
                    payload = Webhook(secret).verify(body, headers)
                    break
                except WebhookVerificationError:
                    continue
            if payload is None:
                self._answer(400, b"signature not verified\n")
                return
            with lock:
                duplicate = headers["webhook-id"] in seen
                seen.add(headers["webhook-id"])
                if not duplicate:
                    entry = {"webhook-id": headers["webhook-id"], "signatures": len(headers["webhook-signature"].split()),
                             "type": payload["type"], "version": payload["data"].get("version")}
                    with args.log.open("a", encoding="utf-8") as log:
                        log.write(json.dumps(entry) + "\n")
            self._answer(200, b"duplicate\n" if duplicate else b"ok\n")

        def _answer(self, status: int, text: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
    args.port_file.write_text(f"{server.server_address[1]}\n", encoding="utf-8")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
