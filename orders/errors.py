"""The one error hierarchy of orderflow.

Views map these to HTTP status codes (see `web/errors.py`); consumer tasks map
them to retry / no-retry (see `tasks/delivery.py`). Each leaf documents which.
"""

from __future__ import annotations

from typing import Any


class OrderflowError(Exception):
    """Base class: every error orderflow raises on purpose derives from it."""

    code = "orderflow_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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


# --- consumers: how a handler tells its task what to do ----------------------------


class TransientError(OrderflowError):
    """Worth trying again later (SMTP 4xx, connection refused, timeout, database down)."""

    code = "transient"


class PermanentError(OrderflowError):
    """Trying again cannot help (SMTP 5xx, malformed payload): dead-letter at once."""

    code = "permanent"


# --- operating dead letters (CLI: one line + exit 1; HTTP: status below) ------------


class InvalidArgument(OrderflowError):
    """A filter or option an operator gave cannot be understood (HTTP 422)."""

    code = "invalid_argument"


class DeliveryNotFound(OrderflowError):
    """No delivery matches the id an operator gave (HTTP 404)."""

    code = "delivery_not_found"


class NotReplayable(OrderflowError):
    """The delivery is not a dead letter (succeeded, running, discarded...): refused (HTTP 409)."""

    code = "not_a_dead_letter"


class ReplayFailed(OrderflowError):
    """The replay message could not be published; the delivery is dead again (HTTP 503)."""

    code = "replay_failed"
