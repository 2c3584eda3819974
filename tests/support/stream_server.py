"""The stream server (live/) on a free port, on an event loop in a thread of the test process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from config.settings import Settings
from devtools.ports import free_port
from live.server import create_app


@contextmanager
def serve_streams(settings: Settings) -> Iterator[str]:
    """Yield the stream server's base URL while it runs; stopped (streams closed) afterwards."""
    loop = asyncio.new_event_loop()
    port = free_port()
    runner = web.AppRunner(create_app(settings), handler_cancellation=True, shutdown_timeout=2)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, name="test-streams", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
