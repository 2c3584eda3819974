"""Is each process of `make run` up? Asked of the process itself, not guessed from a timer.

web and Flower answer HTTP; a Celery worker answers a ping addressed to its node
name; Redis answers PING; PostgreSQL accepts a connection; the SMTP sink and
anything else with a port accepts a TCP connection; the relay (no port) has
said so in its log ("relay started": the supervisor watches its lines).
"""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

Probe = Callable[[], bool]


def http_ok(url: str, timeout: float = 2.0) -> Probe:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return probe


def tcp_open(port: int, host: str = "127.0.0.1") -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            return False

    return probe


def redis_ping(url: str) -> Probe:
    from devtools.local_redis import is_reachable

    return lambda: is_reachable(url)


def postgres_accepts(url: str) -> Probe:
    def probe() -> bool:
        import psycopg

        try:
            psycopg.connect(url, connect_timeout=2).close()
            return True
        except psycopg.Error:
            return False

    return probe


def worker_node(command: str) -> str | None:
    """The Celery node name a Procfile worker line gives itself (`-n email@%h`), or None."""
    if " worker" not in command:
        return None
    match = re.search(r"(?:-n|--hostname)[ =](\S+)", command)
    if match is None:
        return None
    from celery.utils.nodenames import gethostname

    return match.group(1).replace("%h", gethostname())


class CeleryPing:
    """Pings worker nodes over the broker (one connection, reused across probes)."""

    def __init__(self, broker_url: str) -> None:
        from celery import Celery

        self.app: Any = Celery("orderflow-readiness", broker=broker_url)
        self.app.conf.broker_connection_retry_on_startup = False

    def probe(self, node: str, timeout: float = 1.0) -> Probe:
        def probe() -> bool:
            try:
                replies = self.app.control.ping(destination=[node], timeout=timeout)
            except Exception:  # broker not reachable yet: not ready, asked again later
                return False
            return any(node in reply for reply in replies)

        return probe

    def close(self) -> None:
        self.app.close()
