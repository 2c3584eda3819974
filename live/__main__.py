"""`python -m live --port 8001`: the stream server (the Procfile's `stream` process)."""

from __future__ import annotations

import argparse
import logging
import resource
import sys

from aiohttp import web

from config.settings import Settings
from live.server import create_app

log = logging.getLogger("live")

# Sockets besides the streams: the listener, Redis, the database pool, logs.
SPARE_FILES = 64


def raise_open_files(wanted: int) -> int:
    """Each stream is a socket: lift the soft limit on open files towards what the caps need
    (the usual soft default, 1024, would refuse the 1,000th watcher)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"stream server: refusing to start: {exc}", file=sys.stderr)
        return 1
    files = raise_open_files(settings.stream_max_open + SPARE_FILES)
    if files < settings.stream_max_open + SPARE_FILES:
        log.warning("open files limited to %d: fewer streams than STREAM_MAX_OPEN=%d will open",
                    files, settings.stream_max_open)
    log.info("stream server on http://%s:%d (at most %d streams, %d per client address)",
             args.host, args.port, settings.stream_max_open, settings.stream_max_per_client)
    # handler_cancellation: a client that goes away ends its stream at once (its slot too).
    web.run_app(create_app(settings), host=args.host, port=args.port, print=None, access_log=None,
                handler_cancellation=True, shutdown_timeout=5, backlog=1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
