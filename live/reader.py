"""The stream server's database reads: batched, on a small thread pool.

Every stream asks for its order's statuses (on connect, and on each re-read);
the reader gathers what was asked while the previous reads ran and answers it
with one read of many orders (`orders.queries.statuses_of_orders`), on at most
`threads` threads — so a process holds at most `threads` database connections,
and a thousand streams connecting at once cost a handful of queries. A read
always starts after it was asked for: a stream that registered its events and
then asks sees every change committed before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

Statuses = list[dict[str, Any]]
ReadMany = Callable[[list[str]], dict[str, Statuses]]  # unknown orders are absent


class BatchReader:
    def __init__(self, read_many: ReadMany, *, threads: int, batch_max: int = 500) -> None:
        self._read_many = read_many
        self._threads = threads
        self._batch_max = batch_max
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="live-db")
        self._pending: dict[str, list[asyncio.Future[Statuses | None]]] = {}
        self._wakeup = asyncio.Event()

    async def read(self, order_id: str) -> Statuses | None:
        """The order's statuses, or None if there is no such order. Raises what the database raised."""
        future: asyncio.Future[Statuses | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(order_id, []).append(future)
        self._wakeup.set()
        return await future

    async def read_many(self, order_ids: list[str]) -> dict[str, Statuses | BaseException | None]:
        answers = await asyncio.gather(*(self.read(o) for o in order_ids), return_exceptions=True)
        return dict(zip(order_ids, answers, strict=True))

    async def run(self) -> None:
        """Hand what was asked to the threads, in batches, until cancelled."""
        slots = asyncio.Semaphore(self._threads)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    await slots.acquire()
                    batch = {o: self._pending.pop(o) for o in list(self._pending)[: self._batch_max]}
                    task = asyncio.create_task(self._answer(batch, slots))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _answer(self, batch: dict[str, list[asyncio.Future[Statuses | None]]],
                      slots: asyncio.Semaphore) -> None:
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._read_many, list(batch))
        except Exception as exc:
            log.warning("reading %d order(s) failed: %s", len(batch), type(exc).__name__)
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
        else:
            for order_id, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(order_id))
        finally:
            slots.release()
