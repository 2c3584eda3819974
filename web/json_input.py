"""Reading a JSON request body, without Flask: the API and the examples (Flask, Django) share it,
so broken JSON, a wrong Content-Type or a body that is not an object get the same answer
everywhere (web/errors.py turns these exceptions into the one JSON error shape)."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from orders.errors import InvalidOrder


def is_json_mimetype(mimetype: str | None) -> bool:
    """werkzeug's rule (`request.is_json`), for frameworks that do not have it."""
    mt = (mimetype or "").split(";")[0].strip().lower()
    return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))


def parse_json(raw: bytes, *, mimetype: str | None) -> Any:
    """The parsed body, or a 415 / 400 (werkzeug HTTPException) naming the problem."""
    if not is_json_mimetype(mimetype):
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    try:
        data = json.loads(raw)
    except RecursionError:  # the parser recurses per level: 64 KiB of "[[[[..." exhausts the stack
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    except ValueError:  # UnicodeDecodeError included
        raise BadRequest("the body is not valid JSON") from None
    if data is None:
        raise BadRequest("the body is JSON null; send a JSON object")
    return data


def order_input(raw: bytes, *, mimetype: str | None) -> dict[str, Any]:
    """A `POST /orders` body: a JSON object, or the 400/415/422 the API documents."""
    data = parse_json(raw, mimetype=mimetype)
    if not isinstance(data, dict):
        raise InvalidOrder("the body must be a JSON object",
                           details=[{"field": "body", "message": "expected an object"}])
    return data
