"""Flask app factory: wires settings, database, payment gateway and the fast publish path."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Flask

from orders.after_commit import combine
from orders.db import SessionFactory, make_engine, make_session_factory
from orders.in_process import InProcessDispatcher
from orders.payments import PaymentGateway, SimulatedGateway
from orders.place_order import AfterCommit
from orders.settings import Settings

# A request body larger than this is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Services:
    settings: Settings
    session_factory: SessionFactory
    gateway: PaymentGateway
    after_commit: AfterCommit | None


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the API. `config` may carry ORDERFLOW_SETTINGS, PAYMENT_GATEWAY, AFTER_COMMIT
    (the durable publisher; None: leave it to the relay; default: the fast path if
    `settings.uses_fast_path`, i.e. on SQLite, else None: on PostgreSQL the relay is woken
    by NOTIFY and publishes), IN_PROCESS_EVENTS (default True),
    REPLAY_PUBLISH (how a dead-letter replay is published; default: the Celery app)."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config.update(config or {})
    settings: Settings = app.config.get("ORDERFLOW_SETTINGS") or Settings.from_env()
    session_factory = make_session_factory(make_engine(settings.database_url))
    gateway = app.config.get("PAYMENT_GATEWAY") or SimulatedGateway(settings.payment_timeout_seconds)
    after_commit = (
        app.config["AFTER_COMMIT"]
        if "AFTER_COMMIT" in app.config
        else _default_publisher(session_factory, settings)
    )
    if app.config.get("IN_PROCESS_EVENTS", True):
        # After commit: in-process subscribers first (in this request), then the durable hand-off.
        after_commit = combine(InProcessDispatcher(settings), after_commit)
    app.extensions["orderflow"] = Services(settings, session_factory, gateway, after_commit)

    from web import admin, customers, errors, live, metrics, routes

    errors.register(app)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(customers.blueprint)
    app.register_blueprint(live.blueprint)
    admin.register(app)  # the operator page and /admin/api (basic auth)
    metrics.register(app, session_factory)
    logging.getLogger("orders").setLevel(logging.INFO)
    return app


def _default_publisher(session_factory: SessionFactory, settings: Settings) -> AfterCommit | None:
    from tasks import app as celery_app
    from tasks.fast_path import default_publisher

    return default_publisher(celery_app, session_factory, settings)
