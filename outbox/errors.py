"""The one error hierarchy of orderflow: its base, and the errors of delivery and of operators.

The shop's own errors (orders/errors.py) derive from the same base. Views map
every leaf to an HTTP status (web/errors.py); the delivery task maps handler
errors to retry / no-retry (tasks/delivery_task.py); the CLI prints the
message on one line and exits 1.
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


# --- consumers: how a handler tells the delivery what to do ------------------------


class TransientError(OrderflowError):
    """The downstream is unwell; worth trying again later (SMTP 4xx, refused, timeout)."""

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


class UnknownConsumer(OrderflowError):
    """No durable consumer by the name an operator gave (HTTP 404)."""

    code = "unknown_consumer"
