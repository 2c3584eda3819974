"""Live delivery status: the SSE stream and the order page that watches it.

    GET /orders/<id>/events   text/event-stream: each delivery's current status,
                              then one JSON object per change; ends when all are final
    GET /orders/<id>/page     an HTML page showing the statuses live (EventSource)

Each open stream holds one gunicorn thread (gthread) for its lifetime; see the
docs/api.md ("Serving it") for sizing.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from orders.queries import get_order
from web.routes import services
from web.sse import delivery_stream

blueprint = Blueprint("live", __name__, template_folder="templates")


def statuses(order: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten an order's durable deliveries into status messages (in-process ones keep no record)."""
    return [
        {"event_id": event["event_id"], "consumer": consumer, "state": d["state"],
         "attempts": d["attempts"], "last_error": d["last_error"]}
        for event in order["events"]
        for consumer, d in event["deliveries"].items()
    ]


@blueprint.get("/orders/<order_id>/events")
def order_events(order_id: str) -> Response:
    svc = services()
    order = get_order(svc.session_factory, order_id)  # 404 before the stream starts
    stream = delivery_stream(
        redis_url=svc.settings.status_feed_url,
        event_ids=[event["event_id"] for event in order["events"]],
        snapshot=lambda: statuses(get_order(svc.session_factory, order_id)),
        keepalive_seconds=svc.settings.sse_keepalive_seconds,
    )
    return Response(stream, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@blueprint.get("/orders/<order_id>/page")
def order_page(order_id: str) -> str:
    order = get_order(services().session_factory, order_id)
    return render_template("order_page.html", order=order, statuses=statuses(order))
