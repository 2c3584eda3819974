"""Dead letters grouped as an operator thinks of them: one consumer, one error.

An error's fingerprint is its exception class and message with what differs
from letter to letter masked: ids (UUIDs, long hex), e-mail addresses, and
numbers of 4 digits or more or with a decimal point. Numbers of up to 3 digits
are kept: they are protocol codes (SMTP 550 and 554, HTTP 503), which is what
tells one failure from another.

A group is named `<key>@<through>`: `key` hashes consumer and fingerprint;
`through` is the highest death record (`delivery_errors.id` of outcome dead:
the database's own sequence, not a host's clock) among the letters listed.
Replaying or discarding `<key>@<through>` acts on exactly those letters: one
that dies after the listing has a higher death record and is left out, even
if its error is the same (sidekiq#3243: a "Delete All" that ignored its filter).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from outbox.clock import iso
from outbox.databases import ServiceDatabases
from outbox.db import SessionFactory
from outbox.dead_letter_actions import BulkReplay, Replayed, discard_dead_letter, replay_dead_letter
from outbox.errors import InvalidArgument, NotReplayable
from outbox.models import Delivery, DeliveryError
from outbox.redelivery import Publish
from outbox.states import DEAD
from outbox.subscriptions import registry

_MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<id>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # hex ids of 8 characters or more with a digit in them (not a word such as "deadbeef")
    (re.compile(r"\b(?:0x)?(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    # decimals and long numbers; an enhanced status code (5.1.1) is kept whole
    (re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])|\d{4,}"), "<n>"),
]
MAX_FINGERPRINT = 300


def fingerprint(error: str | None) -> str:
    """`TransientError: SMTP 451 4.7.1 try later` -> the same for every letter of that error."""
    text = (error or "").strip().splitlines()[0] if error and error.strip() else "(no error recorded)"
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:MAX_FINGERPRINT]


def group_key(consumer: str, print_: str) -> str:
    return hashlib.sha1(f"{consumer}\0{print_}".encode()).hexdigest()[:12]


@dataclass
class Group:
    key: str
    consumer: str
    error: str  # the fingerprint
    ids: list[int] = field(default_factory=list)  # delivery ids, oldest death first
    through: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    @property
    def name(self) -> str:
        return f"{self.key}@{self.through}"

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.name, "key": self.key, "through": self.through,
                "service": registry.service_of(self.consumer), "consumer": self.consumer,
                "error": self.error, "count": len(self.ids), "first_seen": _iso(self.first_seen),
                "last_seen": _iso(self.last_seen), "ids": self.ids}


def list_groups(session_factory: SessionFactory, *, consumer: str | None = None) -> list[Group]:
    """Every group of dead letters, the largest first."""
    groups: dict[str, Group] = {}
    for delivery_id, name, error, died, death in _letters(session_factory, consumer):
        print_ = fingerprint(error)
        key = group_key(name, print_)
        group = groups.setdefault(key, Group(key, name, print_))
        group.ids.append(delivery_id)
        group.through = max(group.through, death)
        group.first_seen = died if group.first_seen is None else min(group.first_seen, died)
        group.last_seen = died if group.last_seen is None else max(group.last_seen, died)
    return sorted(groups.values(), key=lambda g: (-len(g.ids), g.consumer, g.error))


def members(session_factory: SessionFactory, group: str) -> list[int]:
    """The delivery ids of group `<key>@<through>`, as it was listed: nothing that died later."""
    key, through = parse_group(group)
    return [delivery_id for delivery_id, name, error, _died, death in _letters(session_factory, None)
            if death <= through and group_key(name, fingerprint(error)) == key]


def replay_group(session_factory: SessionFactory, *, group: str, actor: str, reason: str, publish: Publish,
                 per_second: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                 event_sources: Sequence[SessionFactory] = ()) -> BulkReplay:
    """Replay every letter of the group, oldest first, throttled; each audited. `event_sources`:
    the other services' databases, where the letters' event is when another service wrote it."""
    if per_second <= 0:
        raise InvalidArgument("the replay rate must be above 0 per second")
    result = BulkReplay()
    for index, delivery_id in enumerate(members(session_factory, group)):
        if index:
            sleep(1.0 / per_second)
        try:
            done: Replayed = replay_dead_letter(session_factory, ref=delivery_id, actor=actor,
                                                reason=f"{reason} (group {group})", publish=publish,
                                                event_sources=event_sources)
        except NotReplayable as exc:
            result.refused.append((delivery_id, exc.message))
            continue
        result.replayed.append(done)
    return result


def discard_group(session_factory: SessionFactory, *, group: str, actor: str, reason: str) -> list[int]:
    """Discard every letter of the group; returns the delivery ids discarded."""
    if not reason.strip():
        raise InvalidArgument("discarding needs a reason")
    done = []
    for delivery_id in members(session_factory, group):
        try:
            discard_dead_letter(session_factory, ref=delivery_id, actor=actor,
                                reason=f"{reason} (group {group})")
        except NotReplayable:
            continue
        done.append(delivery_id)
    return done


def list_groups_everywhere(databases: ServiceDatabases, *, consumer: str | None = None) -> list[Group]:
    """Every service's groups, the largest first (a group is one consumer's: one database's)."""
    found = [group for database in databases.distinct()
             for group in list_groups(database, consumer=consumer)]
    return sorted(found, key=lambda g: (-len(g.ids), g.consumer, g.error))


def database_of_group(databases: ServiceDatabases, group: str) -> SessionFactory:
    """The database whose letters make up `group` (its key names one consumer, so one service);
    the home one when none has them, where acting on it finds nothing to do."""
    parse_group(group)  # a malformed name: one line, before any read
    return next((database for database in databases.distinct() if members(database, group)),
                databases.named(None))


def parse_group(group: str) -> tuple[str, int]:
    key, _, through = (group or "").strip().partition("@")
    if not re.fullmatch(r"[0-9a-f]{12}", key) or not through.isdigit():
        raise InvalidArgument(f"{group!r} is not a group: use the name `dead-letters groups` shows, "
                              "<key>@<number>")
    return key, int(through)


Letter = tuple[int, str, str | None, datetime, int]


def _letters(session_factory: SessionFactory, consumer: str | None) -> list[Letter]:
    """(delivery id, consumer, last error, died at, death record id) of every dead letter."""
    death = (select(DeliveryError.event_id, DeliveryError.consumer, func.max(DeliveryError.id).label("death"))
             .where(DeliveryError.outcome == DEAD)
             .group_by(DeliveryError.event_id, DeliveryError.consumer).subquery())
    same_delivery = (death.c.event_id == Delivery.event_id) & (death.c.consumer == Delivery.consumer)
    query = (select(Delivery.id, Delivery.consumer, Delivery.last_error, Delivery.updated_at, death.c.death)
             .outerjoin(death, same_delivery)
             .where(Delivery.state == DEAD).order_by(Delivery.updated_at, Delivery.id))
    if consumer:
        query = query.where(Delivery.consumer == consumer)
    with session_factory() as session:
        return [(r[0], r[1], r[2], r[3], r[4] or 0) for r in session.execute(query)]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment.replace(microsecond=0))
