"""The live status as the Procfile serves it: gunicorn (gthread) for the API, the stream server
for the streams. Far more open streams than gunicorn has threads, and the API still answers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
from devtools.ports import free_port, wait_for_port
from orders.seed import seed_products
from outbox.db import make_engine, make_session_factory
from tests.support.databases import fresh_database
from tests.support.local_run import http_json
from tests.support.orders import order_input
from tests.support.processes import stop
from tests.support.sse import open_stream

pytestmark = pytest.mark.e2e

THREADS = 4
STREAMS = 10 * THREADS  # under gthread alone, THREADS of them would stop the API


@dataclass
class Served:
    api: str
    streams: str


@pytest.fixture
def served(tmp_path: Path, redis_url: str) -> Iterator[Served]:
    """gunicorn with the Procfile's worker class (one worker of THREADS threads), and the stream server."""
    with fresh_database("sqlite", tmp_path) as database_url:
        seed_products(make_session_factory(make_engine(database_url)))
        api_port, stream_port = free_port(), free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
               "SSE_KEEPALIVE_SECONDS": "0.5", "STREAM_PUBLIC_URL": f"http://127.0.0.1:{stream_port}"}
        processes = [subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True) for argv in (
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{api_port}", "--workers", "1",
             "--threads", str(THREADS), "--worker-class", "gthread", "web:create_app()"],
            [sys.executable, "-m", "live", "--port", str(stream_port)],
        )]
        try:
            wait_for_port(api_port, timeout=30)
            wait_for_port(stream_port, timeout=30)
            yield Served(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{stream_port}")
        finally:
            for process in processes:
                stop(process)


def test_open_streams_keep_streaming_while_other_requests_are_answered(served: Served):
    # No worker runs: the deliveries stay pending and the streams stay open.
    status, created = http_json("POST", f"{served.api}/orders", order_input())
    assert status == 201, created
    order_id = created["order"]["id"]
    streams = [open_stream(f"{served.streams}/orders/{order_id}/events", timeout=10) for _ in range(STREAMS)]
    try:
        for _conn, stream in streams:
            assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
            assert [next(stream.items).kind for _ in range(3)] == ["message"] * 3

        started = time.monotonic()
        for _ in range(5):
            status, body = http_json("GET", f"{served.api}/products")
            assert status == 200 and body["products"]
            status, body = http_json("POST", f"{served.api}/orders", order_input())
            assert status == 201, body
        assert time.monotonic() - started < 3.0

        # ...and every stream is still alive: each gets its keep-alive comment.
        for _conn, stream in streams:
            assert next(stream.items).kind == "comment"
    finally:
        for conn, _stream in streams:
            conn.close()


def test_the_api_points_stream_clients_to_the_stream_server(served: Served):
    _, created = http_json("POST", f"{served.api}/orders", order_input())
    order_id = created["order"]["id"]
    conn, stream = open_stream(f"{served.api}/orders/{order_id}/events", timeout=10)
    conn.close()
    assert stream.status == 307
