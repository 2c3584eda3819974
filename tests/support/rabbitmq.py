"""A RabbitMQ vhost of its own for each test run: made on the machine's RabbitMQ, deleted after.

RabbitMQ is found at TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/); the
vhost is made with `rabbitmqctl` (as root). Without a RabbitMQ that answers, or without
rabbitmqctl, the RabbitMQ variants skip and say so, except in CI (CI=true), where they fail.
Outages are made per vhost (permissions cleared, its connections closed), never by
stopping the shared server that other test runs use.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def server_url() -> str:
    return os.environ.get("TEST_RABBITMQ_URL") or DEFAULT_URL


def missing_reason() -> str | None:
    """Why the RabbitMQ tests cannot run here, or None."""
    parts = urlsplit(server_url())
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1).close()
    except OSError:
        return f"RabbitMQ not reachable at {parts.hostname}:{parts.port or 5672} (set TEST_RABBITMQ_URL)"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (needed to make a vhost per test run)"
    return None


def require_rabbitmq() -> str:
    reason = missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test RabbitMQ: {reason}")
        pytest.skip(reason)
    return server_url()


def ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60,
                          check=check)


def url_for_vhost(vhost: str, base: str | None = None) -> str:
    parts = urlsplit(base or server_url())
    return urlunsplit(parts._replace(path=f"/{vhost}"))


def user_of(base: str | None = None) -> str:
    return urlsplit(base or server_url()).username or "guest"


@contextmanager
def fresh_vhost(prefix: str = "orderflow_test") -> Iterator[str]:
    """The amqp:// URL of a new, empty vhost; deleted (with its queues) afterwards."""
    base = require_rabbitmq()
    vhost = f"{prefix}_{uuid.uuid4().hex[:10]}"
    ctl("add_vhost", vhost)
    try:
        allow(vhost, base)
        yield url_for_vhost(vhost, base)
    finally:
        ctl("delete_vhost", vhost, check=False)


def allow(vhost: str, base: str | None = None) -> None:
    ctl("set_permissions", "-p", vhost, user_of(base), ".*", ".*", ".*")


def deny(vhost: str, base: str | None = None) -> None:
    """A broker outage for this vhost only: the user loses its permissions and its
    connections are closed. Other vhosts (other test runs) are untouched."""
    ctl("clear_permissions", "-p", vhost, user_of(base))
    close_connections(vhost)


def close_connections(vhost: str) -> None:
    """Close every client connection to `vhost` (a broker restart, as the clients see it)."""
    # `-p`, not `--vhost ... --limit`: RabbitMQ 3.10 takes the latter without filtering on it
    # and closes some other connection of the node (another test run's).
    ctl("close_all_connections", "-p", vhost, "test: connections closed", check=False)


def queue_lengths(vhost_url: str) -> dict[str, int]:
    """Messages ready in each queue of the vhost (not counting unacked ones)."""
    vhost = urlsplit(vhost_url).path.lstrip("/")
    out = ctl("list_queues", "-p", vhost, "name", "messages_ready", "--no-table-headers").stdout
    found: dict[str, int] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            found[fields[0]] = int(fields[1])
    return found


def purge(vhost_url: str, queues: list[str]) -> None:
    """Empty `queues` and Celery's delayed-delivery ladder, so no message of an earlier test
    (a retry's countdown) runs in the next one. A queue that does not exist is skipped."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    ladder = [f"celery_delayed_{level}" for level in range(28)]
    with Connection(vhost_url, connect_timeout=5) as conn:
        channel = conn.channel()
        for name in [*queues, *ladder]:
            try:
                channel.queue_purge(name)
            except NotFound:
                channel = conn.channel()  # a 404 closes the channel


def peek_task_ids(vhost_url: str, queue: str) -> list[str]:
    """The Celery task ids of the messages ready in `queue`, left where they are: each is taken
    unacked, and closing the channel hands them all back to the queue."""
    from kombu import Connection

    ids: list[str] = []
    with Connection(vhost_url, connect_timeout=5) as conn:
        channel = conn.channel()
        while (message := channel.basic_get(queue, no_ack=False)) is not None:
            ids.append(str(message.headers["id"]))
        channel.close()
    return ids


def on_address(vhost_url: str, host: str, port: int) -> str:
    """The same vhost and login, reached at `host:port` (a forwarder in front of the server)."""
    parts = urlsplit(vhost_url)
    login = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{login}@{host}:{port}" if login else f"{host}:{port}"))
