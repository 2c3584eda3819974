"""The smallest Flask app that calls orderflow from a view.

    flask --app examples/flask_app.py run --port 5001

It follows Flask's documented Celery pattern (an app factory calling
`celery_init_app`), with one change: the Celery app is orderflow's own
`tasks.app`, so the messages it sends are consumed by the same
`celery -A tasks worker -Q email|inventory|analytics` processes.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from flask import Flask, request

from orders.after_commit import combine
from orders.db import make_engine, make_session_factory
from orders.errors import OrderflowError
from orders.in_process import InProcessDispatcher
from orders.payments import SimulatedGateway
from orders.place_order import place_order
from orders.queries import get_order
from orders.settings import Settings


def celery_init_app(app: Flask) -> Celery:
    """Flask's `celery_init_app`, but returning orderflow's Celery app and its celeryconfig.

    Flask's version builds a new Celery app whose tasks run inside an app
    context; orderflow's tasks need no Flask context, and a second app with
    other settings would send messages no orderflow worker understands.
    """
    from tasks import app as celery_app

    celery_app.conf.update(app.config.get("CELERY", {}))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(CELERY={"broker_url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")})
    app.config.update(config or {})
    celery_app = celery_init_app(app)

    from tasks.fast_path import default_publisher

    settings = app.config.get("ORDERFLOW_SETTINGS") or Settings.from_env()
    session_factory = make_session_factory(make_engine(settings.database_url))
    gateway = SimulatedGateway()
    # In-process subscribers, then the fast path on SQLite; on PostgreSQL the commit's NOTIFY
    # wakes `python -m tasks.relay`, which publishes (PUBLISH_MODE chooses otherwise).
    after_commit = combine(InProcessDispatcher(settings),
                           default_publisher(celery_app, session_factory, settings))

    @app.post("/checkout")
    def checkout():  # type: ignore[no-untyped-def]
        placed = place_order(session_factory=session_factory, gateway=gateway,
                             data=request.get_json(silent=True), after_commit=after_commit)
        return {"order_id": placed.order_id}, 201

    @app.get("/orders/<order_id>")
    def order(order_id: str):  # type: ignore[no-untyped-def]
        return {"order": get_order(session_factory, order_id)}

    @app.errorhandler(OrderflowError)
    def orderflow_error(exc: OrderflowError):  # type: ignore[no-untyped-def]
        from web.errors import STATUS_BY_ERROR

        status = next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
        return {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}, status

    return app
