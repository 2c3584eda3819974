"""The stream server's aiohttp application: `GET /orders/<id>/events` and `GET /healthz`.

Errors are JSON in the API's one shape, `{"error": {"code", "message"}}`:
404 unknown order, 503 the process holds `stream_max_open` streams (or the
database does not answer), 429 the client address holds `stream_max_per_client`;
503 and 429 carry Retry-After. The re-read loop reads every watched order once
per keep-alive period (every second while the feed is down) in batches, and
hands the result to every stream of the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from config.settings import SHIPPING, Settings
from live import stream
from live.feed import UpdateFeed, feed_for
from live.hub import ClientFull, Hub, StreamsFull
from live.reader import BatchReader, ReadMany

log = logging.getLogger(__name__)

POLL_SECONDS_WITHOUT_FEED = 1.0
RETRY_AFTER_FULL = 5  # seconds; streams end all the time, a slot frees up soon
RETRY_AFTER_CLIENT = 10
WRITE_TIMEOUT_SECONDS = 30.0
# The page is served by the API's origin, the stream by this one; the statuses are no more
# secret than GET /orders/<id> (whoever knows the order id), so any page may read them.
CORS = {"Access-Control-Allow-Origin": "*"}
STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                  "X-Accel-Buffering": "no", **CORS}

HUB = web.AppKey("hub", Hub)
READER = web.AppKey("reader", BatchReader)
SETTINGS = web.AppKey("settings", Settings)


def create_app(settings: Settings, *, read_many: ReadMany | None = None,
               feed: UpdateFeed | None = None) -> web.Application:
    """`read_many` and `feed` default to the database of `settings` and its status feed (Redis
    pub/sub, or PostgreSQL NOTIFY with RabbitMQ: live/feed.py)."""
    app = web.Application()
    app[SETTINGS] = settings
    app[HUB] = Hub(max_open=settings.stream_max_open, max_per_client=settings.stream_max_per_client)
    app.router.add_get("/orders/{order_id}/events", order_events)
    app.router.add_get("/healthz", healthz)
    app.cleanup_ctx.append(_background(read_many, feed or feed_for(settings.status_feed_url)))
    app.on_shutdown.append(_close_streams)
    return app


def error(status: int, code: str, message: str, retry_after: int | None = None) -> web.Response:
    headers = dict(CORS)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return _json({"error": {"code": code, "message": message}}, status, headers)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as the API sends it (`application/json`, no charset parameter)."""
    return web.Response(body=json.dumps(value).encode(), status=status, headers=headers,
                        content_type="application/json")


async def order_events(request: web.Request) -> web.StreamResponse:
    hub, reader = request.app[HUB], request.app[READER]
    order_id = request.match_info["order_id"]
    try:
        watcher = hub.admit(order_id, request.remote or "unknown")
    except StreamsFull:
        return error(503, "too_many_streams", f"this server holds {hub.max_open} streams; try again",
                     RETRY_AFTER_FULL)
    except ClientFull:
        return error(429, "too_many_streams_from_client",
                     f"at most {hub.max_per_client} open streams per client address", RETRY_AFTER_CLIENT)
    try:
        if not hub.knows_events_of(order_id):
            found = await reader.read(order_id)  # which events to route here (and 404)
            if found is None:
                return error(404, "order_not_found", f"no order with id {order_id!r}")
            hub.watch_events(order_id, found)
        began = time.monotonic()
        first = await reader.read(order_id)  # after the routing: nothing falls in between
        if first is None:
            return error(404, "order_not_found", f"no order with id {order_id!r}")
    except Exception as exc:
        hub.leave(watcher)
        log.warning("database unavailable: %s", type(exc).__name__)
        return error(503, "database_unavailable", "the database is unavailable; try again", RETRY_AFTER_FULL)
    except BaseException:
        hub.leave(watcher)
        raise
    response = web.StreamResponse(headers=STREAM_HEADERS)
    try:
        await response.prepare(request)
        await stream.pump(_writer(response), watcher, first, began,
                          request.app[SETTINGS].sse_keepalive_seconds, reread=hub.reread_now)
    except (ConnectionResetError, TimeoutError):
        pass  # the client went away, or stopped reading
    finally:
        hub.leave(watcher)
    return response


def _writer(response: web.StreamResponse) -> stream.Write:
    async def write(text: str) -> None:
        # A client that stops reading must not hold its slot forever.
        await asyncio.wait_for(response.write(text.encode()), WRITE_TIMEOUT_SECONDS)

    return write


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return _json({"status": "ok", "open_streams": hub.open_streams, "feed": "up" if hub.feed_up else "down"})


def _background(read_many: ReadMany | None, feed: UpdateFeed):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings, hub = app[SETTINGS], app[HUB]
        reader = BatchReader(read_many or _database_reader(settings), threads=settings.stream_db_threads)
        app[READER] = reader
        refreshed = asyncio.Event()

        hub.reread_now = refreshed.set  # a stream that looks finished asks for the truth now

        def on_state(up: bool) -> None:
            if up and not hub.feed_up:
                refreshed.set()  # updates may have been missed while it was down: re-read now
            hub.feed_up = up

        tasks = [asyncio.create_task(reader.run(), name="live-reader"),
                 asyncio.create_task(feed.run(hub.dispatch, on_state), name="live-feed"),
                 asyncio.create_task(_reread(hub, reader, settings.sse_keepalive_seconds, refreshed),
                                     name="live-reread")]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return context


async def _reread(hub: Hub, reader: BatchReader, keepalive_seconds: float, now: asyncio.Event) -> None:
    """Every watched order read again each period and handed to its streams (the truth, and the
    streams' keep-alive tick)."""
    while True:
        period = keepalive_seconds if hub.feed_up else POLL_SECONDS_WITHOUT_FEED
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(now.wait(), timeout=period)
        now.clear()
        orders = hub.watched_orders()
        if not orders:
            continue
        began = time.monotonic()
        answers = await reader.read_many(orders)
        for order_id, answer in answers.items():
            hub.broadcast(order_id, answer if isinstance(answer, list) else None, began)


async def _close_streams(app: web.Application) -> None:
    app[HUB].close_all()


def _database_reader(settings: Settings) -> ReadMany:
    import orders.subscriptions  # noqa: F401  (the declarations: which consumers each event has)
    import shipping.subscriptions  # noqa: F401
    from orders.queries import statuses_of_orders
    from outbox.db import make_engine, make_session_factory

    # The threads bound the connections: each holds at most one of the engine's pool.
    session_factory = make_session_factory(make_engine(settings.database_url))
    # The shipping service's database, when it has its own: its events and its consumer's
    # deliveries are part of the order's progress (docs/workflow.md).
    shipping_url = settings.database_url_for(SHIPPING)
    others = ([] if shipping_url == settings.database_url
              else [make_session_factory(make_engine(shipping_url))])

    def read_many(order_ids: list[str]) -> dict[str, Any]:
        return statuses_of_orders(session_factory, order_ids, others=others)

    return read_many
