"""The tests' RFC 3161 time-stamping authority, for the demo: a test CA and TSA certificate made in FOLDER, and
`openssl ts -reply` behind an HTTP handler on 127.0.0.1.

Writes its URL to --url-file once it is ready (the CA certificate is FOLDER/ca.pem); stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tests_support import TimestampAuthority  # noqa: E402 (found through the path just set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--url-file", type=Path, required=True)
    args = parser.parse_args()
    authority = TimestampAuthority(args.folder.resolve(), name="Demo TSA").start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    args.url_file.write_text(authority.url + "\n", encoding="utf-8")
    stop.wait()
    authority.stop()


if __name__ == "__main__":
    main()
