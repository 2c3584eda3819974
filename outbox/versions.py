"""Versioned event payloads: every payload says its schema version; old ones are upcast.

Events outlive the code that wrote them: during a rolling upgrade an old worker
meets a payload written by new code, and a new worker one queued before the upgrade.
So every payload carries `"schema_version": n` (its type's version when written),
each event type declares its current version and one upcaster per step (version
n -> n + 1, a plain function of the payload), and each consumer declares the
highest version it understands (`Subscriber.accepts`, default: the current one).

`read` is the decision, pure, made before a handler sees a payload:

- `Readable`: the payload, upcast step by step to the version the consumer accepts;
- `TooNew`: written by newer code than this consumer understands: not run, not lost;
  the delivery task holds it (its attempt given back) and looks again later, so it
  runs once the consumer is upgraded;
- `Unreadable`: no version, a version that is not a whole number, an undeclared type
  or a missing upcaster: it will never be readable, so it becomes a dead letter
  with that reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from outbox.subscriptions import registry, subscriber_for

VERSION_KEY = "schema_version"

# turns a payload of version n into one of version n + 1 (without setting VERSION_KEY)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Readable:
    payload: Any


@dataclass(frozen=True)
class TooNew:
    version: int
    accepts: int

    def describe(self, consumer: str) -> str:
        return (f"held: payload schema_version {self.version} is newer than {consumer} accepts "
                f"({self.accepts}); it runs once {consumer} is upgraded")


@dataclass(frozen=True)
class Unreadable:
    reason: str


Verdict = Readable | TooNew | Unreadable


@dataclass(frozen=True)
class Schema:
    current: int
    upcasters: Mapping[int, Upcaster]
    # Payloads written before the type was versioned carry no version: read them as this one
    # (None: a payload without a version is unreadable).
    unversioned_as: int | None = None


class Versions:
    """Declared schemas by event type. Thread-safe."""

    def __init__(self) -> None:
        self._schemas: dict[str, Schema] = {}
        self._lock = threading.Lock()

    def declare(self, event_type: str, *, current: int, upcasters: Mapping[int, Upcaster] | None = None,
                unversioned_as: int | None = None) -> Schema:
        """`upcasters[n]` turns version n into n + 1; every step below `current` needs one."""
        steps = dict(upcasters or {})
        missing = [n for n in range(1, current) if n not in steps]
        if current < 1 or missing:
            raise ValueError(f"{event_type}: version {current} needs an upcaster for each of {missing}")
        schema = Schema(current, steps, unversioned_as)
        with self._lock:
            self._schemas[event_type] = schema
        return schema

    def withdraw(self, event_type: str) -> None:
        with self._lock:
            self._schemas.pop(event_type, None)

    def current(self, event_type: str) -> int | None:
        with self._lock:
            schema = self._schemas.get(event_type)
        return schema.current if schema else None

    def read(self, event_type: str | None, payload: Any, *, accepts: int | None) -> Verdict:
        with self._lock:
            schema = self._schemas.get(event_type) if event_type else None
        return read(event_type, schema, payload, accepts=accepts)


def read(event_type: str | None, schema: Schema | None, payload: Any, *, accepts: int | None) -> Verdict:
    """Pure: what a consumer accepting `accepts` (None: the current version) can do with `payload`."""
    if schema is None:
        return Unreadable(f"unknown event type {event_type!r}: no schema declared, cannot read its payload")
    version = payload.get(VERSION_KEY, schema.unversioned_as) if isinstance(payload, dict) else None
    if version is None:
        return Unreadable(f"{event_type} payload has no {VERSION_KEY}: cannot tell how to read it")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return Unreadable(f"{event_type} payload has {VERSION_KEY} {version!r}, not a whole number >= 1")
    target = schema.current if accepts is None else accepts
    if version > target:
        return TooNew(version, target)
    upgraded = dict(payload)
    for step in range(version, target):
        upcast = schema.upcasters.get(step)
        if upcast is None:
            return Unreadable(f"{event_type}: no upcaster from {VERSION_KEY} {step} to {step + 1}")
        upgraded = {**upcast(upgraded), VERSION_KEY: step + 1}
    upgraded[VERSION_KEY] = target
    return Readable(upgraded)


versions = Versions()


def read_for(consumer: str, payload: Any) -> Verdict:
    """The verdict for `consumer`'s handler: its declared `accepts`, the schema of its event type.

    The message carries no event type: it is the one the consumer is declared for (a consumer
    of several types needs payloads that say their `event_type`).
    """
    declared = subscriber_for(consumer)
    types = registry.event_types_of(consumer)
    event_type = types[0] if len(types) == 1 else None
    if event_type is None and isinstance(payload, dict) and isinstance(payload.get("event_type"), str):
        event_type = payload["event_type"]
    return versions.read(event_type, payload, accepts=declared.accepts if declared else None)


def declare_version(event_type: str, *, current: int, upcasters: Mapping[int, Upcaster] | None = None,
                    unversioned_as: int | None = None) -> Schema:
    return versions.declare(event_type, current=current, upcasters=upcasters, unversioned_as=unversioned_as)
