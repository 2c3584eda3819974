"""Customer signup: store the customer and its `customer.signed_up` event in one transaction.

The event goes to the outbox like every event, so a `durable` subscriber added
later gets it too; today its only subscriber is the in-process welcome email,
called by `after_commit` (see `outbox/in_process.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, EmailStr, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from orders.errors import CustomerExists, InvalidSignup
from orders.models import Customer
from orders.payloads import customer_signed_up_payload
from orders.schemas import Name, field_errors
from orders.subscriptions import CUSTOMER_SIGNED_UP
from outbox.after_commit import AfterCommit, run_after_commit
from outbox.clock import new_id
from outbox.db import SessionFactory
from outbox.models import OutboxEvent
from outbox.store import notify_relay


class SignUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    email: EmailStr
    name: Name = ""


@dataclass(frozen=True)
class SignedUp:
    customer_id: str
    event_id: str
    email: str


def sign_up_customer(
    *, session_factory: SessionFactory, data: object, after_commit: AfterCommit | None = None
) -> SignedUp:
    """Sign a customer up or raise InvalidSignup / CustomerExists; on error nothing is written."""
    try:
        command = SignUpIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidSignup("invalid signup", details=field_errors(exc)) from None
    email = command.email.lower()
    customer = Customer(id=new_id(), email=email, name=command.name)
    event_id = new_id()
    event = OutboxEvent(
        id=event_id, event_type=CUSTOMER_SIGNED_UP, aggregate_id=customer.id,
        payload=customer_signed_up_payload(event_id, customer.id, email, command.name),
    )
    try:
        with session_factory.begin() as session:
            if session.scalar(select(Customer.id).where(Customer.email == email)) is not None:
                raise CustomerExists(f"{email} has already signed up")
            session.add_all([customer, event])
            notify_relay(session)
    except IntegrityError:  # a concurrent signup with the same email won the race
        raise CustomerExists(f"{email} has already signed up") from None
    run_after_commit(after_commit, event)
    return SignedUp(customer.id, event_id, email)
