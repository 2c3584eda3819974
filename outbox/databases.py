"""Each service's database, and which one holds a consumer's things.

A consumer's delivery records, dead letters, pause and breaker live in its
service's database (`Subscriber.service`), whichever service published the
event it consumes. The operator's tools (CLI, operator page, /admin/api,
/metrics) read every service's database through this map, so a letter of the
shipping service is listed, replayed and counted like one of the orders service.
Two services may share one database: `distinct()` then gives it once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sqlalchemy import select

from outbox.db import SessionFactory
from outbox.errors import InvalidArgument
from outbox.models import Delivery
from outbox.states import DEAD
from outbox.subscriptions import registry


class ServiceDatabases(Mapping[str, SessionFactory]):
    def __init__(self, by_service: Mapping[str, SessionFactory], *, home: str) -> None:
        if home not in by_service:
            raise ValueError(f"the home service {home!r} has no database")
        self._by_service = dict(by_service)
        self.home = home  # where a consumer declared without a service of its own records

    def __getitem__(self, service: str) -> SessionFactory:
        return self._by_service[service]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_service)

    def __len__(self) -> int:
        return len(self._by_service)

    def named(self, service: str | None) -> SessionFactory:
        """`service`'s database (None: the home one); an unknown name is refused in one line."""
        if service is None:
            return self._by_service[self.home]
        if service not in self._by_service:
            raise InvalidArgument(f"unknown service {service!r}: one of {', '.join(self._by_service)}")
        return self._by_service[service]

    def of_consumer(self, consumer: str | None, service: str | None = None) -> SessionFactory:
        """Where `consumer` keeps its records, letters and controls (home when it names none).
        A `service` that is not the consumer's is refused in one line, not searched in vain."""
        home = self._by_service[self.home]
        own = registry.service_of(consumer) if consumer else None
        found = self._by_service.get(own or self.home, home)
        if service is not None and consumer and self.named(service) is not found:
            raise InvalidArgument(f"{consumer!r} is a consumer of the {own or self.home} service, "
                                  f"not of {service!r}")
        return found if service is None else self.named(service)

    def distinct(self) -> list[SessionFactory]:
        """Each database once, the home one first."""
        found = [self._by_service[self.home]]
        for database in self._by_service.values():
            if all(database is not seen for seen in found):
                found.append(database)
        return found

    def others(self, database: SessionFactory) -> list[SessionFactory]:
        """The databases other than `database`: where an event is when another service wrote it."""
        return [other for other in self.distinct() if other is not database]

    def services_in(self, database: SessionFactory) -> list[str]:
        """The services whose database `database` is."""
        return [name for name, found in self._by_service.items() if found is database]

    def of_letter(self, ref: str | int, service: str | None = None) -> SessionFactory:
        """The database of the delivery `ref` names. A task id `<event_id>:<consumer>` says it by
        its consumer. A bare delivery id is a number in each database: `service` says which;
        without it, the database holding a dead letter of that number (refused in one line when
        several do), else the home one."""
        text = str(ref).strip()
        if ":" in text:
            return self.of_consumer(text.rsplit(":", 1)[1], service)
        if service is not None:
            return self.named(service)
        databases = self.distinct()
        if text.isdigit() and len(databases) > 1:
            holding = [database for database in databases if _has_dead_letter(database, int(text))]
            if len(holding) > 1:
                names = " and ".join("+".join(self.services_in(database)) for database in holding)
                raise InvalidArgument(f"dead letter {text} exists in {names}: say which service "
                                      "(--service / \"service\") or use its task id <event_id>:<consumer>")
            if holding:
                return holding[0]
        return self._by_service[self.home]


def _has_dead_letter(database: SessionFactory, delivery_id: int) -> bool:
    with database() as session:
        return session.scalar(select(Delivery.id).where(Delivery.id == delivery_id,
                                                        Delivery.state == DEAD)) is not None
