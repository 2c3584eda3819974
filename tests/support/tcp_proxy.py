"""A TCP proxy in front of a server that a test can cut and restore.

`down()` closes every open connection and stops listening (clients see
"connection refused", as when the database is stopped); `up()` listens again on
the same port. The shared server itself is never touched. It also forwards a
server that listens on 127.0.0.1 only to an address other hosts reach: `listen`
makes the listening socket (the hosts suite's RabbitMQ: a socket made inside the
store host's network namespace, tests/support/netns.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

from devtools.ports import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *,
                 listen: Callable[[], socket.socket] | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = free_port() if listen is None else 0
        self._make_socket = listen
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # (when, client address) of each connection the server ended first (RabbitMQ closing a
        # client whose heartbeats stopped); a client's own close is not listed.
        self.closed_by_server: list[tuple[float, str]] = []

    def start(self) -> TcpProxy:
        self._thread.start()
        self.up()
        return self

    def up(self) -> None:
        # Made here, on the caller's thread: `listen` may switch this thread's namespace.
        sock = None if self._make_socket is None else self._make_socket()
        self._call(self._listen(sock))

    def down(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _call(self, coroutine) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self, sock: socket.socket | None) -> None:
        if self._server is not None:
            if sock is not None:
                sock.close()
        elif sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=sock)
        else:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        client = str(client_w.get_extra_info("peername")[0])
        ended: list[tuple[str, float]] = []  # which side stopped sending first, and when
        try:
            await asyncio.gather(self._pipe(client_r, server_w, ended, "client"),
                                 self._pipe(server_r, client_w, ended, "server"))
            if ended and ended[0][0] == "server":
                self.closed_by_server.append((ended[0][1], client))
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    ended: list[tuple[str, float]], side: str) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        ended.append((side, time.monotonic()))
        writer.close()
