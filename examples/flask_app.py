"""The smallest Flask app that calls orderflow from a view.

    flask --app examples/flask_app.py run --port 5001

It follows Flask's documented Celery pattern (an app factory calling
`celery_init_app`), with one change: the Celery app is orderflow's own
`tasks.app`, so the messages it sends are consumed by the same
`celery -A tasks worker -Q <queue>` processes, one per declared queue
(`python -m devtools.procfile` lists them; docs/integrating.md).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import Flask, request

import bootstrap
from config.settings import Settings
from orders.place_order import place_order
from orders.queries import get_order
from web import errors
from web.json_input import order_input


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Flask's `celery_init_app`, but returning orderflow's Celery app and its celeryconfig.

    Flask's version builds a new Celery app whose tasks run inside an app
    context; orderflow's tasks need no Flask context, and a second app with
    other settings would send messages no orderflow worker understands.
    """
    from tasks import app as celery_app

    celery_app.conf.update({"broker_url": settings.redis_url, **app.config.get("CELERY", {})})
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("ORDERFLOW_SETTINGS") or Settings.from_env()
    # In-process subscribers, then the fast path on SQLite; on PostgreSQL the commit's NOTIFY
    # wakes `python -m tasks.relay`, which publishes (PUBLISH_MODE chooses otherwise).
    services = bootstrap.build(settings, celery_app=celery_init_app(app, settings))

    @app.post("/checkout")
    def checkout():  # type: ignore[no-untyped-def]
        # The API's own reading of the body: broken JSON is its 400, a non-object its 422.
        data = order_input(request.get_data(), mimetype=request.mimetype)
        placed = place_order(session_factory=services.session_factory, gateway=services.gateway,
                             data=data, after_commit=services.after_commit)
        return {"order_id": placed.order_id}, 201

    @app.get("/orders/<order_id>")
    def order(order_id: str):  # type: ignore[no-untyped-def]
        return {"order": get_order(services.session_factory, order_id)}

    # Every error answered as the API answers it: same statuses, same JSON, same code.
    errors.register(app)

    return app
