"""Every error is JSON of one shape: {"error": {"code", "message", "details"}}.

OrderflowError leaves map to their documented status; HTTP errors (404 route,
405, 413, 415) keep theirs; a database that does not answer is a 503.
`describe(exc)` is that mapping without Flask: the API registers it here, and
the examples (Flask, Django) answer with the very same function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from orders import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[errors.OrderflowError], int]] = [
    (errors.InvalidOrder, 422),  # UnknownProduct included
    (errors.PaymentDeclined, 402),
    (errors.PaymentUnavailable, 503),
    (errors.OrderNotFound, 404),
    (errors.InvalidSignup, 422),
    (errors.CustomerExists, 409),
    (errors.InvalidArgument, 422),
    (errors.DeliveryNotFound, 404),
    (errors.NotReplayable, 409),
    (errors.ReplayFailed, 503),
    (errors.UnknownConsumer, 404),
]


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    body: dict[str, Any]  # {"error": {"code", "message", "details"?}}
    headers: list[tuple[str, str]] = field(default_factory=list)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def describe(exc: BaseException) -> ErrorAnswer:
    """The answer to any exception a view let through, for whichever web framework."""
    if isinstance(exc, errors.OrderflowError):
        status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
        return ErrorAnswer(status, error_body(exc.code, exc.message, exc.details))
    if isinstance(exc, HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        # Keep what the error says about itself, e.g. 401's WWW-Authenticate (the login prompt).
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return ErrorAnswer(exc.code or 500, error_body(code, exc.description or exc.name), headers)
    if isinstance(exc, (OperationalError, DBAPIError)):
        log.warning("database unavailable: %s", type(exc).__name__)
        return ErrorAnswer(503, error_body("database_unavailable", "the database is unavailable; try again"))
    log.error("unexpected error", exc_info=exc)
    return ErrorAnswer(500, error_body("internal_error", "unexpected error; it has been logged"))


def error_response(status: int, code: str, message: str, details: Any = None):  # type: ignore[no-untyped-def]
    return jsonify(error_body(code, message, details)), status


def register(app: Flask) -> None:
    @app.errorhandler(Exception)
    def _any(exc: Exception):  # type: ignore[no-untyped-def]
        # One handler: Flask would pick among several by class, describe() does the same.
        answer = describe(exc)
        response = jsonify(answer.body)
        for name, value in answer.headers:
            response.headers[name] = value
        return response, answer.status
