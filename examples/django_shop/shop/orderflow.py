"""orderflow's services for the Django views, built once from Django's settings (bootstrap.py)."""

from __future__ import annotations

import functools
import os

from django.conf import settings as django_settings

import bootstrap
from config.settings import Settings


@functools.cache
def services() -> bootstrap.Services:
    from shop_project.celery import app as celery_app

    # Django's ORDERFLOW setting wins over the environment, key by key.
    settings = Settings.from_env({**os.environ, **django_settings.ORDERFLOW})
    # After commit: in-process subscribers, then (SQLite) the fast path to the durable queues;
    # whatever it misses, and on PostgreSQL everything, `python -m tasks.relay` publishes.
    return bootstrap.build(settings, celery_app=celery_app)
