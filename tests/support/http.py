"""A small JSON-over-HTTP client for tests that talk to a real gunicorn."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tests.support.orders import order_input


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    seconds: float


def request(method: str, url: str, body: bytes | None = None, *, content_type: str = "application/json",
            timeout: float = 30) -> Answer:
    started = time.monotonic()
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, time.monotonic() - started)


def http_json(method: str, url: str, data: Any = None) -> Answer:
    return request(method, url, json.dumps(data).encode() if data is not None else None)


def place_many(base: str, count: int, *, threads: int = 16,
               make: Callable[[int], dict[str, Any]] | None = None) -> list[Answer]:
    """POST `count` orders from `threads` client threads at once."""
    make = make or (lambda _i: order_input())
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda i: http_json("POST", f"{base}/orders", make(i)), range(count)))
