"""A local SMTP sink for the demo: accepts every message on 127.0.0.1 and writes each to FOLDER/NNN-recipient.eml.

Writes the port it listens on to --port-file once it is ready; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Folder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
            for recipient in envelope.rcpt_tos:
                name = re.sub(r"[^a-z0-9@.-]", "_", recipient.lower())
                (self.folder / f"{self.count:03d}-{name}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 2.0.0 OK: kept in the demo's mail folder"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Folder(args.folder), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    args.port_file.write_text(f"{port}\n", encoding="utf-8")
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
