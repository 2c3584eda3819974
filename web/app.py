"""Flask app factory: the API, the live status, the operator pages, /metrics, on bootstrap's services."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

import bootstrap
from bootstrap import Services
from config.settings import Settings

# A request body larger than this is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024

__all__ = ["Services", "create_app"]


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
    options: dict[str, Any] = {"gateway": app.config.get("PAYMENT_GATEWAY"),
                               "in_process_events": app.config.get("IN_PROCESS_EVENTS", True),
                               "replay_publish": app.config.get("REPLAY_PUBLISH")}
    if "AFTER_COMMIT" in app.config:
        options["publisher"] = app.config["AFTER_COMMIT"]
    services = bootstrap.build(settings, **options)
    app.extensions["orderflow"] = services

    from web import admin, customers, errors, live, metrics, routes

    errors.register(app)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(customers.blueprint)
    app.register_blueprint(live.blueprint)
    admin.register(app)  # the operator page and /admin/api (basic auth)
    metrics.register(app, services.databases)
    logging.getLogger("orders").setLevel(logging.INFO)
    return app
