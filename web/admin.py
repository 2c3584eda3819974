"""The operator page: consumers (Pause/Resume, breaker, held count), dead letters grouped by error
(Replay/Discard a group) and one by one (Replay/Discard), recent orders with their delivery states.

Server-rendered (Jinja, no build step), behind the same basic auth as
/admin/api. Forms post back here and redirect to the page with a notice; each
task links to Flower (`<FLOWER_URL>/task/<event_id>:<consumer>`).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask, redirect, render_template, request, url_for

from orders.errors import OrderflowError
from orders.queries import recent_orders
from outbox import consumer_control, dead_letters
from outbox import dead_letter_actions as actions
from outbox import dead_letter_groups as groups
from outbox.states import IN_FLIGHT_STATES
from web import admin_api, auth
from web.routes import services

blueprint = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
IN_FLIGHT = set(IN_FLIGHT_STATES)
RECENT_ORDERS = 20


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
    admin_api.register(app)


@blueprint.before_request
def _login() -> None:
    auth.check(services().settings.admin_password)


@blueprint.get("")
def page():  # type: ignore[no-untyped-def]
    svc = services()
    orders = recent_orders(svc.session_factory, limit=RECENT_ORDERS,
                           others=svc.databases.others(svc.session_factory))
    # Every service's letters and consumers, each from its own database (outbox/databases.py).
    letters = dead_letters.list_dead_letters_everywhere(svc.databases)
    consumers = consumer_control.list_consumers_everywhere(svc.databases)
    busy = any(d["state"] in IN_FLIGHT for o in orders for e in o["events"] for d in e["deliveries"].values())
    busy = busy or any(c["held"] or c["status"] != "running" for c in consumers)
    return render_template(
        "admin.html",
        orders=orders,
        dead_letters=letters,
        consumers=consumers,
        groups=[g.as_dict() for g in groups.list_groups_everywhere(svc.databases)],
        flower_url=svc.settings.flower_url,
        token=auth.form_token(svc.settings.admin_password),
        notice=request.args.get("notice"),
        problem=request.args.get("problem"),
        refresh=busy,
    )


@blueprint.post("/dead-letters/<ref>/replay")
def replay(ref: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        database, elsewhere = admin_api.letter_database(ref, None)  # the page posts task ids
        done = actions.replay_dead_letter(
            database, ref=ref, actor=admin_api.actor(request.form.get("by")),
            reason=_reason("replayed from the operator page"), publish=admin_api.publisher(),
            event_sources=elsewhere)
        return f"replayed delivery {done.delivery_id} ({done.task_id})"

    return _form_action(act)


@blueprint.post("/dead-letters/<ref>/discard")
def discard(ref: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        database, _elsewhere = admin_api.letter_database(ref, None)
        done = actions.discard_dead_letter(
            database, ref=ref, actor=admin_api.actor(request.form.get("by")),
            reason=_reason(""))
        return f"discarded delivery {done['id']}"

    return _form_action(act)


@blueprint.post("/consumers/<name>/pause")
def pause(name: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        view = consumer_control.pause(services().databases.of_consumer(name), name,
                                      actor=admin_api.actor(request.form.get("by")), reason=_reason(""))
        return f"paused {view.consumer}: its deliveries are held until resumed"

    return _form_action(act)


@blueprint.post("/consumers/<name>/resume")
def resume(name: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        view = consumer_control.resume(services().databases.of_consumer(name), name,
                                       actor=admin_api.actor(request.form.get("by")),
                                       reason=_reason("resumed from the operator page"))
        return f"resumed {view.consumer}: now {view.status}"

    return _form_action(act)


@blueprint.post("/dead-letters/groups/<group>/replay")
def replay_group(group: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        databases = services().databases
        database = groups.database_of_group(databases, group)
        result = groups.replay_group(
            database, group=group, actor=admin_api.actor(request.form.get("by")),
            reason=_reason("group replayed from the operator page"), publish=admin_api.publisher(),
            per_second=admin_api.HTTP_BULK_RATE, event_sources=databases.others(database))
        return f"group {group}: {len(result.replayed)} replayed, {len(result.refused)} skipped"

    return _form_action(act)


@blueprint.post("/dead-letters/groups/<group>/discard")
def discard_group(group: str):  # type: ignore[no-untyped-def]
    def act() -> str:
        done = groups.discard_group(groups.database_of_group(services().databases, group), group=group,
                                    actor=admin_api.actor(request.form.get("by")), reason=_reason(""))
        return f"group {group}: {len(done)} discarded"

    return _form_action(act)


def _form_action(act: Callable[[], str]):  # type: ignore[no-untyped-def]
    """Check the form token, act, and go back to the page saying what happened."""
    auth.check_form(services().settings.admin_password)
    try:
        notice = act()
    except OrderflowError as exc:  # refused (e.g. already succeeded): shown, not a crash
        return redirect(url_for("admin.page", problem=exc.message))
    return redirect(url_for("admin.page", notice=notice))


def _reason(default: str) -> str:
    return request.form.get("reason", "").strip() or default
