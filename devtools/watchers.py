"""Many live-status watchers in one process: what a crowd of order pages does to the stream server.

    python -m devtools.watchers http://127.0.0.1:8001/orders/<id>/events --count 1000
    python -m devtools.watchers URL1 URL2 ... --count 5000      # spread over several orders

Each watcher is one `GET .../events` read on an asyncio loop (aiohttp's client), so a
thousand cost a thread and a few megabytes here. The tests and bench/streams.py use
`Crowd` (a loop in a thread, driven from synchronous code); the command prints how many
are open, their states, and how many saw `end`, until every stream ended or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Watcher:
    url: str
    status: int | None = None  # the HTTP status, once answered
    messages: list[dict[str, Any]] = field(default_factory=list)
    comments: int = 0
    ended: bool = False
    error: str | None = None
    closed: bool = False

    @property
    def last_state(self) -> dict[str, str]:
        """Per consumer, the last state this watcher saw."""
        return {m["consumer"]: m["state"] for m in self.messages}


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def watch(session: aiohttp.ClientSession, watcher: Watcher) -> None:
    try:
        async with session.get(watcher.url, headers={"Accept": "text/event-stream"}) as response:
            watcher.status = response.status
            if response.status != 200:
                return
            event, data = "message", []
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    watcher.comments += 1
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    if event == "end":
                        watcher.ended = True
                        return
                    watcher.messages.append(json.loads("\n".join(data)))
                    event, data = "message", []
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        watcher.error = f"{type(exc).__name__}: {exc}"
    finally:
        watcher.closed = True


class Crowd:
    """Watchers on an event loop in a thread; `open`, `wait_until`, then `close`."""

    def __init__(self) -> None:
        self.watchers: list[Watcher] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="watchers", daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def open(self, urls: list[str]) -> list[Watcher]:
        raise_open_files(len(self.watchers) + len(urls) + 256)
        added = [Watcher(url) for url in urls]
        self.watchers += added
        asyncio.run_coroutine_threadsafe(self._start(added), self._loop).result(timeout=30)
        return added

    async def _start(self, watchers: list[Watcher]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=True),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None))
        self._tasks += [asyncio.create_task(watch(self._session, w)) for w in watchers]

    def wait_until(self, condition: Callable[[Watcher], bool], *, timeout: float, what: str,
                   watchers: list[Watcher] | None = None) -> None:
        """Until every watcher meets `condition`; AssertionError naming how many did not."""
        group = self.watchers if watchers is None else watchers
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(condition(w) for w in group):
                return
            time.sleep(0.05)
        late = [w for w in group if not condition(w)]
        raise AssertionError(f"{len(late)} of {len(group)} watchers: not {what} within {timeout} s; "
                             f"first: {late[0]}")

    def close(self) -> None:
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.watchers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("urls", nargs="+", metavar="url",
                        help="a stream's URL, http://127.0.0.1:8001/orders/<id>/events; several: in turn")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long at most")
    args = parser.parse_args()
    started = time.monotonic()
    with Crowd() as crowd:
        crowd.open([args.urls[i % len(args.urls)] for i in range(args.count)])
        while time.monotonic() - started < args.seconds:
            watchers = crowd.watchers
            states: dict[str, int] = {}
            for w in watchers:
                for consumer, state in w.last_state.items():
                    states[f"{consumer}={state}"] = states.get(f"{consumer}={state}", 0) + 1
            refused = sum(1 for w in watchers if w.status not in (None, 200))
            ended = sum(1 for w in watchers if w.ended)
            # streaming: answered 200 and still open
            streaming = sum(1 for w in watchers if w.status == 200 and w.messages and not w.closed)
            closed = sum(1 for w in watchers if w.closed)
            print(f"{time.monotonic() - started:6.1f}s streaming={streaming} refused={refused} "
                  f"ended={ended} closed={closed} {dict(sorted(states.items()))}", flush=True)
            if all(w.closed for w in watchers):
                break
            time.sleep(1.0)


if __name__ == "__main__":
    main()
