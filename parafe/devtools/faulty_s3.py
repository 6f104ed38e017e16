"""An S3 server (moto's server mode) that fails requests on demand: ``python -m parafe.devtools.faulty_s3``.

The chaos scenario (:mod:`parafe.devtools.chaos`) starts it as a separate process in front of nothing: it *is* the
S3 endpoint of every node. While the control file (``--fail-file``) exists, each request fails with probability
given by the file's content (a float, ``1`` when empty): the answer is ``503 SlowDown`` in S3's XML error shape,
as a real S3 answers under throttling, so boto3 retries it and gives up after its attempts. Failed requests are
counted in ``<fail-file>.count`` (one line per failure, appended).

moto is a development dependency (``pip install -e .[dev]``); this module needs it.
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>chaos</RequestId></Error>")


class FaultInjector:
    """WSGI middleware: ``503 SlowDown`` while ``fail_file`` exists (with its probability), else the app."""

    def __init__(self, app: Callable[..., Iterable[bytes]], fail_file: Path) -> None:
        self.app = app
        self.fail_file = fail_file
        self.count_file = fail_file.with_name(fail_file.name + ".count")
        self.lock = threading.Lock()

    def _rate(self) -> float:
        try:
            text = self.fail_file.read_text().strip()
        except FileNotFoundError:
            return 0.0
        try:
            return float(text) if text else 1.0
        except ValueError:
            return 1.0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        rate = self._rate()
        if rate > 0 and random.random() < rate:
            stream = environ.get("wsgi.input")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if stream is not None and length:  # read the body so that the client sees the answer
                while length > 0:
                    chunk = stream.read(min(length, 65536))
                    if not chunk:
                        break
                    length -= len(chunk)
            with self.lock, open(self.count_file, "a") as fh:
                fh.write(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}\n")
            start_response("503 Slow Down", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(SLOW_DOWN)))])
            return [SLOW_DOWN]
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="S3 (moto) with fault injection")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-file", type=Path, required=True)
    args = parser.parse_args(argv)
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = FaultInjector(DomainDispatcherApplication(create_backend_app), args.fail_file)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"S3 (moto) avec injection de pannes sur http://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
