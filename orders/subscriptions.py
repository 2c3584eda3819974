"""The shop's subscriptions: who hears which event, with which handler and retry policy.

This is the one place to change a consumer. Adding one is a declaration here
plus its handler in orders/consumers/: its Celery task, queue, Procfile line
and `make run` process follow from the declaration (outbox/subscriptions.py
says how). Task names are what in-flight messages point to: keep them.
"""

from __future__ import annotations

from config.settings import ORDERS
from orders.consumers import analytics, email, fulfilment, inventory, status_mail, welcome
from orders.order_events import (
    ORDER_BACKORDERED,
    ORDER_CANCELLED,
    ORDER_RESERVED,
    ORDER_SHIPPED,
    ORDER_STATUS_VERSION,
    SHIPMENT_BOOKED,
    SHIPMENT_REJECTED,
)
from orders.payloads import CUSTOMER_SIGNED_UP_VERSION, ORDER_CREATED_VERSION
from outbox.policies import RetryPolicy
from outbox.subscriptions import IN_PROCESS, Subscriber, declare
from outbox.versions import declare_version

# The service these consumers belong to: their records are in the orders database.
SERVICE = ORDERS
ORDER_CREATED = "order.created"
CUSTOMER_SIGNED_UP = "customer.signed_up"

# Each event type's current schema version, with one upcaster per step (version n -> n + 1:
# `upcasters={1: order_created_v1_to_v2}`) once there is a version 2 (docs/operations.md).
# Payloads written before versioning carry none: they are version 1.
declare_version(ORDER_CREATED, current=ORDER_CREATED_VERSION, unversioned_as=1)
declare_version(CUSTOMER_SIGNED_UP, current=CUSTOMER_SIGNED_UP_VERSION, unversioned_as=1)
# The events a consumer's effect writes (orders/order_events.py): events that cause events.
for _follow_up in (ORDER_RESERVED, ORDER_BACKORDERED, ORDER_SHIPPED, ORDER_CANCELLED):
    declare_version(_follow_up, current=ORDER_STATUS_VERSION)

# SMTP servers throttle and greylist: be patient.
EMAIL = declare(ORDER_CREATED, Subscriber(
    "email", opens=email.confirmation_sender, task_name="orders.email.send_confirmation",
    policy=RetryPolicy(max_retries=8, backoff_base=2.0, backoff_max=300.0),
    effects_in_database=False, service=SERVICE,
))
# A database hiccup: a few quick tries.
INVENTORY = declare(ORDER_CREATED, Subscriber(
    "inventory", handler=inventory.reserve_stock, task_name="orders.inventory.reserve_stock",
    policy=RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=60.0), service=SERVICE,
))
# Fire-and-forget: one retry, then a dead letter nobody is paged for.
ANALYTICS = declare(ORDER_CREATED, Subscriber(
    "analytics", handler=analytics.record_revenue, task_name="orders.analytics.record_revenue",
    policy=RetryPolicy(max_retries=1, backoff_base=1.0, backoff_max=10.0), service=SERVICE,
))
# The customer's mails after the order was placed: "some items are delayed" (and, from the
# shipping service's outcome, shipped or cancelled). SMTP, as patient as the confirmation.
CUSTOMER_MAIL = declare(ORDER_BACKORDERED, Subscriber(
    "customer_mail", opens=status_mail.status_mail_sender, task_name="orders.mail.send_status",
    policy=RetryPolicy(max_retries=8, backoff_base=2.0, backoff_max=300.0),
    effects_in_database=False, service=SERVICE,
))
declare(ORDER_SHIPPED, CUSTOMER_MAIL)
declare(ORDER_CANCELLED, CUSTOMER_MAIL)
# The shipping service's answer (its events, published by its own relay): shipped, or the
# compensation (refund, stock back, cancelled). The gateway may be slow: a few patient tries.
FULFILMENT = declare(SHIPMENT_BOOKED, Subscriber(
    "fulfilment", opens=fulfilment.shipment_applier, task_name="orders.fulfilment.apply_shipment",
    policy=RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=60.0), service=SERVICE,
))
declare(SHIPMENT_REJECTED, FULFILMENT)
# Runs in the web process after the signup commits: a lost welcome mail is acceptable.
WELCOME_EMAIL = declare(CUSTOMER_SIGNED_UP, Subscriber(
    "welcome_email", handler=welcome.send_welcome, mode=IN_PROCESS,
))
