"""Reading an event's payload: a payload that lacks a field or carries the wrong type is that
delivery's permanent failure, with a reason a person can act on (not a bare `KeyError: 'lines'`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orders.errors import PermanentError


@contextmanager
def reading_payload(event_type: str) -> Iterator[None]:
    """Wrap only the reading of the payload: errors of the effect itself keep their class."""
    try:
        yield
    except KeyError as exc:
        raise PermanentError(f"the {event_type} payload lacks {exc.args[0]!r}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise PermanentError(f"the {event_type} payload cannot be read: {exc}") from exc


def positive_int(value: object, field: str) -> int:
    number = int(value)  # type: ignore[call-overload]
    if number < 1 or isinstance(value, bool):
        raise ValueError(f"{field} must be a positive integer, not {value!r}")
    return number
