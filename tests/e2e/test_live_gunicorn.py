"""SSE under gunicorn's gthread worker, as the Procfile serves it: open streams do not block."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.ports import free_port, wait_for_port
from orders.db import make_engine, make_session_factory
from orders.seed import seed_products
from orders.settings import PROJECT_ROOT
from tests.support.databases import fresh_database
from tests.support.local_run import http_json
from tests.support.orders import order_input
from tests.support.processes import stop
from tests.support.sse import open_stream

pytestmark = pytest.mark.e2e

THREADS = 4


@pytest.fixture
def gunicorn(tmp_path: Path, redis_url: str) -> Iterator[str]:
    """gunicorn with the Procfile's worker class, one worker of THREADS threads."""
    with fresh_database("sqlite", tmp_path) as database_url:
        seed_products(make_session_factory(make_engine(database_url)))
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
               "SSE_KEEPALIVE_SECONDS": "0.5"}
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", str(THREADS), "--worker-class", "gthread", "web:create_app()"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        try:
            wait_for_port(port, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def test_open_streams_keep_streaming_while_other_requests_are_answered(gunicorn: str):
    # No worker runs: the deliveries stay pending and the streams stay open.
    status, created = http_json("POST", f"{gunicorn}/orders", order_input())
    assert status == 201, created
    url = f"{gunicorn}/orders/{created['order']['id']}/events"
    streams = [open_stream(url, timeout=10) for _ in range(THREADS - 1)]
    try:
        for _conn, stream in streams:
            assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
            assert [next(stream.items).kind for _ in range(3)] == ["message"] * 3

        started = time.monotonic()
        for _ in range(5):
            status, body = http_json("GET", f"{gunicorn}/products")
            assert status == 200 and body["products"]
        assert time.monotonic() - started < 3.0

        # ...and every stream is still alive: each gets its keep-alive comment.
        for _conn, stream in streams:
            assert next(stream.items).kind == "comment"
    finally:
        for conn, _stream in streams:
            conn.close()
