"""A minimal Server-Sent Events client over http.client, for reading a stream in tests."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SseItem:
    kind: str  # "message", "end" (an `event:` name), or "comment"
    data: Any = None


@dataclass
class SseStream:
    status: int
    content_type: str
    items: Iterator[SseItem]


def open_stream(url: str, *, timeout: float = 30.0) -> tuple[http.client.HTTPConnection, SseStream]:
    """Connect and read the headers; iterate `.items` to read events as they arrive."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    conn.request("GET", parts.path, headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    return conn, SseStream(response.status, response.getheader("Content-Type", ""), _items(response))


def read_until_end(url: str, *, timeout: float = 30.0, into: list[SseItem] | None = None) -> list[SseItem]:
    """Every item of the stream until its `end` event (or the server closes); bounded by `timeout`.

    Items are appended to `into` as they arrive (when reading in a thread).
    """
    deadline = time.monotonic() + timeout
    conn, stream = open_stream(url, timeout=timeout)
    items: list[SseItem] = [] if into is None else into
    try:
        for item in stream.items:
            items.append(item)
            if item.kind == "end" or time.monotonic() > deadline:
                break
    finally:
        conn.close()
    return items


def _items(response: http.client.HTTPResponse) -> Iterator[SseItem]:
    event, data = "message", []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            yield SseItem("comment", line[1:].strip())
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield SseItem(event, json.loads("\n".join(data)))
            event, data = "message", []
