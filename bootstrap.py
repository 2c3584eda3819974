"""The one place that wires orderflow together: Settings -> the services a caller uses.

    services = bootstrap.build()            # settings from the environment
    place_order(session_factory=services.session_factory, gateway=services.gateway,
                data=..., after_commit=services.after_commit)

The web app (web/app.py), the CLI (cli/), the Flask and Django examples and the
benchmarks all call `build`; nothing else builds an engine, a gateway or the
after-commit chain. Everything it builds is cheap and lazy: no connection is
opened and no thread started until first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery

from config.settings import ORDERS, SHIPPING, Settings
from orders.payments import PaymentGateway, SimulatedGateway
from outbox import tracing
from outbox.after_commit import AfterCommit, combine
from outbox.databases import ServiceDatabases
from outbox.db import SessionFactory, make_engine, make_session_factory
from outbox.in_process import InProcessDispatcher
from outbox.redelivery import Publish
from tasks.fast_path import AfterCommitPublisher, default_publisher
from tasks.publisher import replay_publisher

_DEFAULT: Any = object()


@dataclass(frozen=True)
class Services:
    settings: Settings
    session_factory: SessionFactory
    gateway: PaymentGateway
    # What runs after a use case commits: the in-process subscribers, then the fast path
    # (SQLite) that hands the event to the durable queues. None: nothing (the relay publishes).
    after_commit: AfterCommit | None
    # The fast path inside after_commit, if there is one (`drain()` it at shutdown); None on
    # PostgreSQL, where the commit's NOTIFY wakes the relay, which publishes.
    fast_path: AfterCommitPublisher | None
    # How a dead-letter replay is published (the project's Celery app).
    replay_publish: Publish
    # Each service's database by service name ("orders", "shipping"): the shipping one is the
    # same session factory when SHIPPING_DATABASE_URL is the orders database.
    databases: ServiceDatabases


def build(settings: Settings | None = None, *, celery_app: Celery | None = None,
          gateway: PaymentGateway | None = None, publisher: Any = _DEFAULT,
          in_process_events: bool = True, replay_publish: Publish | None = None) -> Services:
    """Build every service from `settings` (default: the environment).

    `publisher` replaces the durable hand-off after commit (None: leave every event to
    the relay); by default it is the fast path when `settings.uses_fast_path`.
    `in_process_events=False` leaves the in-process subscribers out.
    """
    settings = settings or Settings.from_env()
    if celery_app is None:
        from tasks import app as celery_app
    session_factory = make_session_factory(make_engine(settings.database_url))
    tracing.configure(settings.otel_endpoint, settings.otel_service_name)  # no-op when unset
    fast_path = None
    if publisher is _DEFAULT:
        publisher = fast_path = default_publisher(celery_app, session_factory, settings)
    elif isinstance(publisher, AfterCommitPublisher):
        fast_path = publisher
    after_commit = publisher
    if in_process_events:
        # In-process subscribers first (in this request), then the durable hand-off.
        after_commit = combine(InProcessDispatcher(settings), publisher)
    shipping_url = settings.database_url_for(SHIPPING)
    databases = ServiceDatabases({ORDERS: session_factory,
                                  SHIPPING: session_factory if shipping_url == settings.database_url
                                  else make_session_factory(make_engine(shipping_url))}, home=ORDERS)
    return Services(
        settings=settings,
        databases=databases,
        session_factory=session_factory,
        gateway=gateway or SimulatedGateway(settings.payment_timeout_seconds),
        after_commit=after_commit,
        fast_path=fast_path,
        replay_publish=replay_publish or replay_publisher(celery_app),
    )
