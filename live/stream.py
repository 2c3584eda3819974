"""One open stream: the current state, then each change, keep-alives, and `end`.

The order of operations is the hub's: the stream is registered (its events are
routed to its queue) BEFORE its first database read, so a change committed in
between arrives on the queue, and is dropped as a duplicate if the read already
saw it. Channel updates only move a delivery forward (`progress.forward`);
database re-reads are the truth, except one that began before a channel update
this stream already sent (it may predate it). The stream ends with `end` once
every delivery is final, as a database read says (`pump`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from live.hub import Status, Watcher
from live.progress import END, KEEPALIVE, Sent, all_final, format_event, forward

Write = Callable[[str], Awaitable[None]]

# How long a reconnecting EventSource waits (the `retry:` field), in milliseconds.
RECONNECT_MS = 2000


async def pump(write: Write, watcher: Watcher, first: list[Status], first_read_began: float,
               keepalive_seconds: float, reread: Callable[[], None] = lambda: None) -> bool:
    """Stream until every delivery is final (True) or the server closes (False).

    Final is what a database read says: a delivery's success committed with the next event
    its consumer wrote (docs/workflow.md), which the channel does not announce. So when a
    channel update makes everything look final, the stream asks for a re-read (`reread`) and
    ends only if that read, begun after the update, finds nothing more to wait for.
    """
    sent: Sent = {}
    confirmed = True  # the last word was the database's
    count = 0
    basis = first_read_began  # nothing older than this may be sent as the truth
    chunks = [f"retry: {RECONNECT_MS}\n\n"]
    for status in forward(first, sent, from_database=True):
        count += 1
        chunks.append(format_event(status, count))
    await write("".join(chunks))
    last_write = time.monotonic()
    while not (all_final(sent) and confirmed):
        if all_final(sent):
            reread()  # looks finished after a channel update: ask the database
        update = await watcher.queue.get()
        if update.kind == "closing":
            return False
        if update.statuses is None:  # a re-read that failed: a tick only
            changes = []
        elif update.kind == "channel":
            changes = list(forward(update.statuses, sent))
            if changes:
                basis = max(basis, update.at)
                confirmed = False
        elif update.at >= basis:
            changes = list(forward(update.statuses, sent, from_database=True))
            basis = update.at
            confirmed = True
        else:
            changes = []  # began before a change this stream sent: the next re-read is due soon
        if changes:
            chunks = []
            for status in changes:
                count += 1
                chunks.append(format_event(status, count))
            await write("".join(chunks))
            last_write = time.monotonic()
        elif update.kind == "database" and time.monotonic() - last_write >= keepalive_seconds / 2:
            # Re-reads come every keep-alive period: an idle stream says so at least that often.
            await write(KEEPALIVE)
            last_write = time.monotonic()
    await write(END)
    return True
