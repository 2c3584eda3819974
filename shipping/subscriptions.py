"""The shipping service's subscription: it hears `order.reserved`, in its own database.

`service=SHIPPING` puts the consumer's delivery records and effects in the
shipping database (Settings.database_url_for): the Celery task, queue, Procfile
line and `make run` worker follow from the declaration, as for the shop's.
The event names are the two services' contract (orders/order_events.py writes
order.reserved; orders/subscriptions.py hears shipment.*): neither imports the other.
"""

from __future__ import annotations

from config.settings import SHIPPING
from outbox.policies import RetryPolicy
from outbox.subscriptions import Subscriber, declare
from outbox.versions import declare_version
from shipping import booking

ORDER_RESERVED = "order.reserved"

for _event_type in (booking.SHIPMENT_BOOKED, booking.SHIPMENT_REJECTED):
    declare_version(_event_type, current=booking.SHIPMENT_VERSION)

# The carrier may be away for a while (postcode 99999 in the demo): patient, capped backoff.
BOOK = declare(ORDER_RESERVED, Subscriber(
    "shipping", opens=booking.booker, task_name="shipping.book_shipment", service=SHIPPING,
    policy=RetryPolicy(max_retries=8, backoff_base=1.0, backoff_max=30.0),
))
