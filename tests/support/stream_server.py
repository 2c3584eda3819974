"""The stream server (live/) on a free port, on an event loop in a thread of the test process.

Everything happens on that thread (a test's own thread may already run a loop: Playwright's)."""

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
    port = free_port()
    ready = threading.Event()
    control: dict[str, object] = {}

    async def main() -> None:
        runner = web.AppRunner(create_app(settings), handler_cancellation=True, shutdown_timeout=2)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stop = asyncio.Event()
            control.update(loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            control["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="test-streams", daemon=True)
    thread.start()
    if not ready.wait(timeout=15) or "error" in control:
        raise AssertionError(f"the stream server did not start: {control.get('error')!r}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop, stop = control["loop"], control["stop"]
        loop.call_soon_threadsafe(stop.set)  # type: ignore[attr-defined]
        thread.join(timeout=15)
