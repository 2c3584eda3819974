"""Dead letters over HTTP (JSON), behind the operator's basic auth.

    GET  /admin/api/dead-letters?consumer=&error=&since=&until=&state=&limit=   (every service's)
    GET  /admin/api/dead-letters/<id>?service=        (id or task id <event_id>:<consumer>)
    POST /admin/api/dead-letters/<id>/replay          {"by"?, "reason"?, "service"?}
    POST /admin/api/dead-letters/replay               {"consumer", "since"?, "until"?, "error"?, "limit"?}
    POST /admin/api/dead-letters/<id>/discard         {"reason", "by"?, "service"?}
    (a bare delivery id is the orders service's unless "service" says "shipping"; a task id
    names its consumer, whose service is known)
    (consumers and dead-letter groups: web/admin_consumers_api.py)

POST bodies must be JSON: a browser on another site cannot send that without
a CORS preflight, which this API never grants.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Flask, jsonify, request

from orders.errors import InvalidArgument
from outbox import dead_letter_actions as actions
from outbox import dead_letters
from outbox.db import SessionFactory
from outbox.redelivery import Publish
from web import auth
from web.routes import json_body, services

blueprint = Blueprint("admin_api", __name__, url_prefix="/admin/api")
# Bulk replays run inside the request: keep them short (the CLI has no such cap).
HTTP_BULK_LIMIT, HTTP_BULK_RATE = 50, 10.0


def register(app: Flask) -> None:
    from web import admin_consumers_api  # consumers and dead-letter groups: their own module

    app.register_blueprint(blueprint)
    admin_consumers_api.register(app)


def publisher() -> Publish:
    return services().replay_publish  # type: ignore[no-any-return]


def actor(by: object) -> str:
    """For the audit trail: who they say they are (else the login user), marked as from the web."""
    name = str(by or "").strip()
    return f"{name} (web)" if name else f"{auth.ADMIN_USER} (web)"


@blueprint.before_request
def _login() -> None:
    auth.check(services().settings.admin_password)


@blueprint.get("/dead-letters")
def list_letters():  # type: ignore[no-untyped-def]
    args = request.args
    filters = dead_letters.make_filters(consumer=args.get("consumer"), error=args.get("error"),
                                        since=args.get("since"), until=args.get("until"),
                                        state=args.get("state"), limit=args.get("limit"))
    return jsonify(dead_letters=dead_letters.list_dead_letters_everywhere(services().databases, filters))


@blueprint.get("/dead-letters/<ref>")
def show_letter(ref: str):  # type: ignore[no-untyped-def]
    database, elsewhere = letter_database(ref, request.args.get("service"))
    return jsonify(dead_letter=dead_letters.show_dead_letter(database, ref, event_sources=elsewhere))


@blueprint.post("/dead-letters/<ref>/replay")
def replay_letter(ref: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    database, elsewhere = letter_database(ref, body.get("service"))
    done = actions.replay_dead_letter(database, ref=ref, actor=actor(body.get("by")),
                                      reason=str(body.get("reason") or "replayed over the API"),
                                      publish=publisher(), event_sources=elsewhere)
    return jsonify(replayed={"id": done.delivery_id, "task_id": done.task_id, "queue": done.consumer}), 202


@blueprint.post("/dead-letters/replay")
def replay_letters():  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    if not body.get("consumer"):
        raise InvalidArgument("a bulk replay needs \"consumer\"")
    filters = dead_letters.make_filters(consumer=body.get("consumer"), error=body.get("error"),
                                        since=body.get("since"), until=body.get("until"),
                                        limit=body.get("limit") or HTTP_BULK_LIMIT)
    filters = replace(filters, limit=min(filters.limit, HTTP_BULK_LIMIT))
    databases = services().databases
    database = databases.of_consumer(filters.consumer)
    result = actions.replay_dead_letters(
        database, filters=filters, actor=actor(body.get("by")),
        reason=str(body.get("reason") or "bulk replay over the API"), publish=publisher(),
        per_second=HTTP_BULK_RATE, event_sources=databases.others(database))
    return replay_answer(result)


@blueprint.post("/dead-letters/<ref>/discard")
def discard_letter(ref: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    database, _elsewhere = letter_database(ref, body.get("service"))
    done = actions.discard_dead_letter(database, ref=ref, actor=actor(body.get("by")),
                                       reason=str(body.get("reason") or ""))
    return jsonify(discarded=done)


def letter_database(ref: str, service: object) -> tuple[SessionFactory, list[SessionFactory]]:
    """The database of the letter `ref` names (see the module's note), and the others."""
    if service is not None and not isinstance(service, str):
        raise InvalidArgument("\"service\" must be a string: orders or shipping")
    databases = services().databases
    database = databases.of_letter(ref, service or None)
    return database, databases.others(database)


def replay_answer(result: Any):  # type: ignore[no-untyped-def]
    """202 with what a bulk or group replay sent again and what it skipped, and why."""
    return jsonify(
        replayed=[{"id": r.delivery_id, "task_id": r.task_id} for r in result.replayed],
        skipped=[{"id": delivery_id, "reason": why} for delivery_id, why in result.refused],
    ), 202


def object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    return body
