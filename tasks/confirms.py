"""Publisher confirms, pipelined: publish a whole pass, then wait once for the broker's acks.

With `confirm_publish` (celeryconfig.py) py-amqp makes every `basic_publish` wait
for its own confirm: one round trip per message, so a relay pass costs what an
`apply_async` loop costs. Here the messages of one call go out back to back on a
channel of our own in confirm mode, and the call returns only once the broker
has confirmed every one of them. The guarantee is the same: a nack, a confirm
that does not come within CONFIRM_TIMEOUT_SECONDS, or a connection lost midway
raises `Unconfirmed`, so the caller does not mark the events published (the
relay sends them again; a message that did get through is then delivered twice,
which the delivery records make harmless).

On Redis (no confirms) `confirmed()` changes nothing.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Generous: a quorum queue confirms once a majority has the message on disk.
CONFIRM_TIMEOUT_SECONDS = 10.0


class Unconfirmed(Exception):
    """The broker did not confirm every message of a publish (nack, timeout, connection lost)."""


class ConfirmChannel:
    """An AMQP channel in confirm mode whose publishes do not wait; `wait()` waits for all.

    Delivery tags count the channel's publishes from 1 after `confirm.select`, so
    the channel is ours alone: every publish on it goes through `_publish`, which
    numbers it.
    """

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_select()
        channel._confirm_selected = True  # py-amqp must not select again
        self.published = 0  # the last delivery tag used
        self.pending: set[int] = set()
        self.nacked = 0
        channel.basic_publish = self._publish  # instead of py-amqp's publish-and-wait
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)

    def _publish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("confirm_timeout", None)
        sent = self.channel._basic_publish(*args, **kwargs)
        self.published += 1
        self.pending.add(self.published)
        return sent

    def _settle(self, tag: int, multiple: bool) -> int:
        settled = {t for t in self.pending if t <= tag} if multiple else {tag} & self.pending
        self.pending -= settled
        return len(settled)

    def _ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _nack(self, tag: int, multiple: bool) -> None:
        self.nacked += self._settle(tag, multiple)

    def usable_on(self, connection: Any) -> bool:
        return bool(self.channel.is_open) and self.channel.connection is connection

    def wait(self, timeout: float = CONFIRM_TIMEOUT_SECONDS) -> None:
        """Until every publish so far is confirmed; raise `Unconfirmed` if one was refused.

        A nack is raised only once every outstanding confirm came in, so the channel
        is clean for the next call; a timeout leaves it unusable (see `confirmed`)."""
        deadline = time.monotonic() + timeout
        while self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unconfirmed(f"{len(self.pending)} message(s) not confirmed within {timeout:.0f}s")
            try:
                self.channel.connection.drain_events(timeout=left)
            except TimeoutError:  # socket.timeout
                continue
        if self.nacked:
            refused, self.nacked = self.nacked, 0
            raise Unconfirmed(f"the broker refused {refused} message(s) (nack)")


# One confirm channel per connection of the pool (a relay, a reconciler, a web process).
_channels: weakref.WeakKeyDictionary[Any, ConfirmChannel] = weakref.WeakKeyDictionary()


def _confirm_channel(connection: Any) -> ConfirmChannel:
    """`connection`'s confirm channel (a kombu Connection), made again after a reconnect.

    A pooled connection may have died while idle: RabbitMQ closes a connection whose
    heartbeats stopped, and a relay that publishes nothing sends none. kombu's own
    retry would hide that from a publish, but not from the channel made here: a look
    at the socket first (a read that does not wait) finds it closed, and one reconnect
    follows."""
    for attempt in (1, 2):
        try:
            amqp_connection = connection.connection  # connects if needed
            with contextlib.suppress(TimeoutError):  # nothing to read: alive
                amqp_connection.drain_events(timeout=0)
            found = _channels.get(connection)
            if found is None or not found.usable_on(amqp_connection):
                found = _channels[connection] = ConfirmChannel(connection.channel())
            return found
        except (*connection.connection_errors, OSError):
            _channels.pop(connection, None)
            connection.collect()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def confirms_publishes(producer: Any) -> bool:
    """True when the producer's broker confirms publishes (RabbitMQ with confirm_publish)."""
    return bool(getattr(producer.channel.connection, "confirm_publish", False))


@contextmanager
def confirmed(producer: Any, *, timeout: float = CONFIRM_TIMEOUT_SECONDS) -> Iterator[None]:
    """Within the block `producer` publishes without waiting; leaving it waits for every
    confirm and raises `Unconfirmed` if one did not come, or came as a nack."""
    if not confirms_publishes(producer):
        yield
        return
    connection = producer.connection
    confirms = _confirm_channel(connection)
    producer.revive(confirms.channel)  # the pool gives it its default channel again on release
    try:
        yield
        if producer.channel is not confirms.channel:
            # kombu reconnected midway and moved the producer to a new channel: what went
            # out on the old one may be lost. Everything is sent again.
            raise Unconfirmed("the connection was lost while publishing")
        confirms.wait(timeout)
    except BaseException:
        if confirms.pending:
            # Confirms still owed would be counted for the next call's messages: this
            # channel and its connection are dropped (kombu reconnects on next use).
            _channels.pop(connection, None)
            with contextlib.suppress(Exception):
                connection.collect()
        raise
