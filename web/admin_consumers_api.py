"""Consumers and dead-letter groups over HTTP (JSON), behind the operator's basic auth.

    GET  /admin/api/consumers                         status, breaker, held count, recent audit
    POST /admin/api/consumers/<name>/pause            {"reason", "by"?}
    POST /admin/api/consumers/<name>/resume           {"reason"?, "by"?}
    GET  /admin/api/dead-letters/groups?consumer=     by consumer and error: count, first/last seen, ids
    POST /admin/api/dead-letters/groups/<group>/replay    {"reason"?, "by"?}   (throttled)
    POST /admin/api/dead-letters/groups/<group>/discard   {"reason", "by"?}

`<group>` is the `group` a listing returned (`<key>@<through>`): the action
covers exactly the letters that listing showed (outbox/dead_letter_groups.py).
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify, request

from orders.errors import InvalidArgument
from outbox import consumer_control, dead_letters
from outbox import dead_letter_groups as groups
from web import auth
from web.admin_api import HTTP_BULK_RATE, actor, object_body, publisher, replay_answer
from web.routes import json_body, services

blueprint = Blueprint("admin_consumers_api", __name__, url_prefix="/admin/api")
HTTP_GROUP_LIMIT = 200  # replays inside one request, throttled: keep it bounded


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)


@blueprint.before_request
def _login() -> None:
    auth.check(services().settings.admin_password)


@blueprint.get("/consumers")
def list_consumers():  # type: ignore[no-untyped-def]
    return jsonify(consumers=consumer_control.list_consumers_everywhere(services().databases))


@blueprint.post("/consumers/<name>/pause")
def pause(name: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    view = consumer_control.pause(services().databases.of_consumer(name), name, actor=actor(body.get("by")),
                                  reason=str(body.get("reason") or ""))
    return jsonify(consumer=consumer_control.describe(view))


@blueprint.post("/consumers/<name>/resume")
def resume(name: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    view = consumer_control.resume(services().databases.of_consumer(name), name, actor=actor(body.get("by")),
                                   reason=str(body.get("reason") or "resumed over the API"))
    return jsonify(consumer=consumer_control.describe(view))


@blueprint.get("/dead-letters/groups")
def list_groups():  # type: ignore[no-untyped-def]
    consumer = request.args.get("consumer") or None
    if consumer:
        dead_letters.make_filters(consumer=consumer)  # unknown consumer: 422
    found = groups.list_groups_everywhere(services().databases, consumer=consumer)
    return jsonify(groups=[g.as_dict() for g in found])


@blueprint.post("/dead-letters/groups/<group>/replay")
def replay_group(group: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    databases = services().databases
    database = groups.database_of_group(databases, group)
    ids = groups.members(database, group)
    if len(ids) > HTTP_GROUP_LIMIT:
        raise InvalidArgument(f"group {group} has {len(ids)} letters; over HTTP at most "
                                     f"{HTTP_GROUP_LIMIT}: use `orderflow dead-letters replay-group`")
    result = groups.replay_group(database, group=group, actor=actor(body.get("by")),
                                 reason=str(body.get("reason") or "group replay over the API"),
                                 publish=publisher(), per_second=HTTP_BULK_RATE,
                                 event_sources=databases.others(database))
    return replay_answer(result)


@blueprint.post("/dead-letters/groups/<group>/discard")
def discard_group(group: str):  # type: ignore[no-untyped-def]
    body = object_body(json_body())
    database = groups.database_of_group(services().databases, group)
    done = groups.discard_group(database, group=group, actor=actor(body.get("by")),
                                reason=str(body.get("reason") or ""))
    return jsonify(discarded=done)
