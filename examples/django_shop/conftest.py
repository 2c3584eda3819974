"""The example shop's tests reuse orderflow's fixtures: real Redis, databases, SMTP, a worker."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.conftest", "tests.integration.conftest"]


@pytest.fixture
def orderflow(settings, runtime, celery_app):
    """Point the shop's orderflow services at this test's database, Redis and SMTP server.

    (`settings` here is orderflow's fixture; Django's is reached through django.conf.)
    """
    from django.conf import settings as django_settings
    from shop.orderflow import services

    saved = django_settings.ORDERFLOW
    django_settings.ORDERFLOW = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                                 "SMTP_URL": settings.smtp_url}
    services.cache_clear()
    yield services()
    django_settings.ORDERFLOW = saved
    services.cache_clear()
