"""orderflow's services for the Django views, built once from Django's settings."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from django.conf import settings as django_settings

from orders.after_commit import AfterCommit, combine
from orders.db import SessionFactory, make_engine, make_session_factory
from orders.in_process import InProcessDispatcher
from orders.payments import PaymentGateway, SimulatedGateway
from orders.settings import Settings
from tasks.fast_path import AfterCommitPublisher, default_publisher


@dataclass(frozen=True)
class Orderflow:
    settings: Settings
    session_factory: SessionFactory
    gateway: PaymentGateway
    after_commit: AfterCommit
    # The fast path (part of after_commit; `drain()` at shutdown); None on PostgreSQL, where
    # the commit's NOTIFY wakes the relay, which publishes.
    publisher: AfterCommitPublisher | None


@functools.cache
def services() -> Orderflow:
    from shop_project.celery import app as celery_app

    settings = Settings.from_env({**os.environ, **django_settings.ORDERFLOW})
    session_factory = make_session_factory(make_engine(settings.database_url))
    # After commit: in-process subscribers, then (SQLite) the fast path to the durable queues;
    # whatever it misses, and on PostgreSQL everything, `python -m tasks.relay` publishes.
    publisher = default_publisher(celery_app, session_factory, settings)
    after_commit = combine(InProcessDispatcher(settings), publisher)
    return Orderflow(settings, session_factory, SimulatedGateway(settings.payment_timeout_seconds),
                     after_commit, publisher)
