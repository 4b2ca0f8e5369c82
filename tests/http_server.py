"""A local HTTP server with byte-range requests, for the tests of remote inputs (``https://``-like URLs).

Python's :class:`http.server.SimpleHTTPRequestHandler` answers every ``GET`` with
the whole file. uproot's HTTP source needs ranges: ``HEAD`` for the size, then
``GET`` with ``Range: bytes=a-b`` (status 206), or several ranges at once
(``bytes=a-b, c-d``), answered here as ``multipart/byteranges`` as RFC 9110
describes (uproot falls back to one request per range when a server declines).

    with serve(folder) as server:      # server.url: "http://127.0.0.1:PORT"
        uproot.open(f"{server.url}/file.root")

Bound to 127.0.0.1 on a free port; :func:`serve` shuts it down on exit.
``server.requests`` lists the paths of the ``GET`` requests answered (a test can
check that the files were read remotely).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

_RANGE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
BOUNDARY = "diffhep-test-boundary"


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` with single and multiple byte ranges (206 / multipart)."""

    requests: list[str] = []  # replaced per server by serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Silent: the tests' output stays clean."""

    def _ranges(self, size: int) -> list[tuple[int, int]] | None:
        """``[(start, stop), ...]`` of the ``Range`` header (stop exclusive), or ``None`` without one."""
        header = self.headers.get("Range")
        if header is None or not header.startswith("bytes="):
            return None
        out = []
        for part in header[len("bytes=") :].split(","):
            found = _RANGE.fullmatch(part)
            if found is None or found[1] == found[2] == "":
                return []
            if found[1] == "":  # "-n": the last n bytes
                start, stop = max(size - int(found[2]), 0), size
            else:
                start = int(found[1])
                stop = size if found[2] == "" else min(int(found[2]) + 1, size)
            if start >= stop:
                return []
            out.append((start, stop))
        return out

    def do_GET(self) -> None:
        """The file, or its ranges (206); 416 for a range outside it; 404 for a missing file."""
        type(self).requests.append(self.path)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "File not found")
            return
        size = path.stat().st_size
        ranges = self._ranges(size)
        if ranges is None:
            super().do_GET()
            return
        if not ranges:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with open(path, "rb") as f:
            parts = []
            for start, stop in ranges:
                f.seek(start)
                parts.append((start, stop, f.read(stop - start)))
        if len(parts) == 1:
            start, stop, data = parts[0]
            self.send_response(206)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        body = (
            b"".join(
                f"\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n".encode()
                + data
                for start, stop, data in parts
            )
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
        self.send_response(206)
        self.send_header("Content-Type", f"multipart/byteranges; boundary={BOUNDARY}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(NamedTuple):
    """A running server: its base URL and the paths of the ``GET`` requests it answered so far."""

    url: str
    requests: list[str]


@contextlib.contextmanager
def serve(folder: str | os.PathLike[str]) -> Iterator[Server]:
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; shut down and closed when the block ends."""
    requests: list[str] = []
    handler = type("Handler", (RangeRequestHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="diffhep-test-http", daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
