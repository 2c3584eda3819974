"""Who hears which event, and how: declared here, in one place.

Every subscriber chooses a delivery mode:

- `durable` (the default): the event goes through the outbox to the
  subscriber's own Celery queue (named after it) and task, with retries, a
  delivery record and a dead letter. Survives crashes and broker outages.
- `in_process`: the subscriber's handler is called in the publishing process
  right after the transaction commits (blinker signal, `orders/in_process.py`).
  No broker needed, no record; an exception is logged and never reaches the
  caller; **lost if the process dies** between the commit and the call.

Adding a durable consumer = one line here + one thin task in `tasks/consumers/`;
an in-process one = one line here naming its handler (`module:function`).
"""

from __future__ import annotations

from dataclasses import dataclass

ORDER_CREATED = "order.created"
CUSTOMER_SIGNED_UP = "customer.signed_up"

DURABLE = "durable"
IN_PROCESS = "in_process"


@dataclass(frozen=True)
class Subscriber:
    consumer: str
    task_name: str = ""  # durable: the Celery task that runs it
    mode: str = DURABLE
    handler: str = ""  # in_process: "module:function", called as handler(event_id=, payload=, settings=)
    # durable: its task also takes `batch=[[event_id, payload], ...]` (tasks/delivery.py), so the
    # publisher may pack several deliveries into one message when events pile up
    batches: bool = False

    def __post_init__(self) -> None:
        if self.mode == DURABLE and not self.task_name:
            raise ValueError(f"durable subscriber {self.consumer!r} needs a task_name")
        if self.mode == IN_PROCESS and not self.handler:
            raise ValueError(f"in-process subscriber {self.consumer!r} needs a handler")
        if self.mode not in (DURABLE, IN_PROCESS):
            raise ValueError(f"unknown delivery mode {self.mode!r}")

    @property
    def queue(self) -> str:
        return self.consumer


SUBSCRIPTIONS: dict[str, tuple[Subscriber, ...]] = {
    ORDER_CREATED: (
        Subscriber("email", "orders.email.send_confirmation", batches=True),
        Subscriber("inventory", "orders.inventory.reserve_stock", batches=True),
        Subscriber("analytics", "orders.analytics.record_revenue", batches=True),
    ),
    CUSTOMER_SIGNED_UP: (
        Subscriber("welcome_email", mode=IN_PROCESS, handler="orders.consumers.welcome:send_welcome"),
    ),
}


def subscribers_of(event_type: str, mode: str = DURABLE) -> tuple[Subscriber, ...]:
    """The subscribers of `event_type` with that delivery mode (durable by default:
    what the publisher sends and what delivery records exist for)."""
    return tuple(s for s in SUBSCRIPTIONS.get(event_type, ()) if s.mode == mode)


def all_consumers() -> list[str]:
    """Durable consumers: each has a Celery queue."""
    return sorted({s.consumer for subs in SUBSCRIPTIONS.values() for s in subs if s.mode == DURABLE})


def task_id_for(event_id: str, consumer: str) -> str:
    """Deterministic: a republished event reuses the same task id (Flower groups them)."""
    return f"{event_id}:{consumer}"


def batch_task_id(event_ids: list[str], consumer: str) -> str:
    """A batch's task id names its first and last event and its size (readable in Flower)."""
    return f"{event_ids[0]}..{event_ids[-1]}+{len(event_ids)}:{consumer}"
