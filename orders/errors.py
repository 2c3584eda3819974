"""The shop's errors: placing orders and signing up. Views map them to HTTP statuses.

They derive from the one base, `outbox.errors.OrderflowError`, where the
errors of delivery (TransientError, PermanentError) and of operators live;
those are re-exported here so a handler imports all it raises from one place.
"""

from __future__ import annotations

from outbox.errors import (  # noqa: F401  (re-exported: the whole hierarchy, from one module)
    DeliveryNotFound,
    InvalidArgument,
    NotReplayable,
    OrderflowError,
    PermanentError,
    ReplayFailed,
    TransientError,
    UnknownConsumer,
)

# --- placing orders (HTTP 4xx/503) -------------------------------------------------


class InvalidOrder(OrderflowError):
    """The input does not describe a valid order (HTTP 422). `details` names the fields."""

    code = "invalid_order"


class UnknownProduct(InvalidOrder):
    """An order line names a product that does not exist (HTTP 422)."""

    code = "unknown_product"


class PaymentDeclined(OrderflowError):
    """The gateway refused the charge; nothing was written (HTTP 402)."""

    code = "payment_declined"


class PaymentUnavailable(OrderflowError):
    """The gateway did not answer in time or failed; nothing was written (HTTP 503)."""

    code = "payment_unavailable"


class OrderNotFound(OrderflowError):
    """No order has that id (HTTP 404)."""

    code = "order_not_found"


# --- customers (HTTP 422/409) -------------------------------------------------------


class InvalidSignup(OrderflowError):
    """The signup input is invalid (HTTP 422). `details` names the fields."""

    code = "invalid_signup"


class CustomerExists(OrderflowError):
    """A customer with that email already signed up (HTTP 409)."""

    code = "customer_exists"
