"""Who hears which event: declared here, in one place.

Each subscriber is a consumer with its own Celery queue (named after it) and
task. Adding a consumer = one line here + one thin task in `tasks/consumers/`.
"""

from __future__ import annotations

from dataclasses import dataclass

ORDER_CREATED = "order.created"


@dataclass(frozen=True)
class Subscriber:
    consumer: str
    task_name: str

    @property
    def queue(self) -> str:
        return self.consumer


SUBSCRIPTIONS: dict[str, tuple[Subscriber, ...]] = {
    ORDER_CREATED: (
        Subscriber("email", "orders.email.send_confirmation"),
        Subscriber("inventory", "orders.inventory.reserve_stock"),
        Subscriber("analytics", "orders.analytics.record_revenue"),
    ),
}


def subscribers_of(event_type: str) -> tuple[Subscriber, ...]:
    return SUBSCRIPTIONS.get(event_type, ())


def all_consumers() -> list[str]:
    return sorted({s.consumer for subs in SUBSCRIPTIONS.values() for s in subs})


def task_id_for(event_id: str, consumer: str) -> str:
    """Deterministic: a republished event reuses the same task id (Flower groups them)."""
    return f"{event_id}:{consumer}"
