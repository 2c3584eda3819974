"""Live delivery status: the order page, and where its stream is.

    GET /orders/<id>/page     an HTML page showing the order's status and each hop's deliveries
                              live (EventSource), rows added as the chain goes on
    GET /orders/<id>/events   307 to the stream server (live/, STREAM_PUBLIC_URL)

The stream itself is served by the stream server (`python -m live`, the
Procfile's `stream` process), never by gunicorn: an open stream would hold one
of its threads, and a few dozen watchers would stop the shop taking orders.
The redirect keeps old links and clients that follow redirects working.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template

from orders.queries import delivery_statuses, get_order
from web.routes import services

blueprint = Blueprint("live", __name__, template_folder="templates")


def statuses(order: dict[str, Any]) -> list[dict[str, Any]]:
    """Each delivery's status, with the type of the event it delivers (the page's first column)."""
    types = {event["event_id"]: event["type"] for event in order["events"]}
    return [{**status, "event_type": types.get(status["event_id"])}
            for status in delivery_statuses(order["events"])]


def stream_url(order_id: str) -> str:
    """Where a browser reads the order's stream ("" base: the same origin, via a proxy)."""
    return f"{services().settings.stream_public_url}/orders/{order_id}/events"


@blueprint.get("/orders/<order_id>/events")
def order_events(order_id: str) -> Response:
    get_order(services().session_factory, order_id)  # an unknown order stays a JSON 404 here
    return redirect(stream_url(order_id), code=307)  # type: ignore[return-value]


@blueprint.get("/orders/<order_id>/page")
def order_page(order_id: str) -> str:
    svc = services()
    order = get_order(svc.session_factory, order_id, others=svc.databases.others(svc.session_factory))
    return render_template("order_page.html", order=order, statuses=statuses(order),
                           stream_url=stream_url(order_id))
