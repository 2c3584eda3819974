"""Every error is JSON of one shape: {"error": {"code", "message", "details"}}.

OrderflowError leaves map to their documented status; HTTP errors (404 route,
405, 413, 415) keep theirs; a database that does not answer is a 503.
"""

from __future__ import annotations

import logging
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


def error_response(status: int, code: str, message: str, details: Any = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return jsonify(error=body), status


def register(app: Flask) -> None:
    @app.errorhandler(errors.OrderflowError)
    def _domain(exc: errors.OrderflowError):  # type: ignore[no-untyped-def]
        status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
        return error_response(status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # type: ignore[no-untyped-def]
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = error_response(exc.code or 500, code, exc.description or exc.name)
        # Keep what the error says about itself, e.g. 401's WWW-Authenticate (the login prompt).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _database(exc: Exception):  # type: ignore[no-untyped-def]
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(503, "database_unavailable", "the database is unavailable; try again")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; it has been logged")
