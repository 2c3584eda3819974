"""Fault and load fixtures: a throwaway PostgreSQL database, a Redis server the test owns,
an SMTP sink, and the system's real processes (stopped, with everything they forked, at the end)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from devtools.smtp_sink import SmtpSink
from orders.seed import seed_products
from outbox.db import SessionFactory, make_engine, make_session_factory
from tests.support.databases import fresh_database
from tests.support.processes import OwnedRedis, Processes, process_env
from tests.support.stalling_smtp import StallingHandler, stalling_sink


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    procs = getattr(item, "funcargs", {}).get("procs")
    if report.failed and isinstance(procs, Processes):
        # The processes' own words are the best clue to a failed fault test.
        for proc in procs.started:
            report.sections.append((f"{proc.log.name} (tail)", proc.text()[-3000:]))


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def db(pg_url: str) -> Iterator[SessionFactory]:
    """The test's view of the database (straight to PostgreSQL, never through a proxy)."""
    engine = make_engine(pg_url)
    session_factory = make_session_factory(engine)
    seed_products(session_factory)
    yield session_factory
    engine.dispose()


@pytest.fixture
def owned_redis(tmp_path: Path) -> Iterator[OwnedRedis]:
    server = OwnedRedis(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with stalling_sink(tmp_path / "mail") as sink:
        yield sink


@pytest.fixture
def stalling(mail_sink: SmtpSink) -> StallingHandler:
    assert isinstance(mail_sink.handler, StallingHandler)
    return mail_sink.handler


@pytest.fixture
def process_database_url(pg_url: str) -> str:
    """The DATABASE_URL of the system's processes (a test may route it through a proxy)."""
    return pg_url


@pytest.fixture
def process_smtp_url(mail_sink: SmtpSink) -> str:
    return mail_sink.url


@pytest.fixture
def procs(tmp_path: Path, db: SessionFactory, process_database_url: str, owned_redis: OwnedRedis,
          process_smtp_url: str) -> Iterator[Processes]:
    processes = Processes(tmp_path / "logs", process_env(
        database_url=process_database_url, redis_url=owned_redis.url, smtp_url=process_smtp_url))
    yield processes
    processes.stop_all()


@pytest.fixture
def publisher(owned_redis: OwnedRedis) -> Iterator[Celery]:
    """A producer in the test process, talking to the test's own Redis."""
    app = Celery("test-publisher")
    app.config_from_object("celeryconfig")
    app.conf.broker_url = owned_redis.url
    yield app
    app.close()


@contextmanager
def row_locked(database_url: str, sku: str) -> Iterator[None]:
    """Hold the product row's lock: the inventory consumer's UPDATE waits on it, mid-delivery.

    NO KEY UPDATE, so that placing an order (whose lines reference the product:
    a KEY SHARE lock) still goes through.
    """
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            conn.execute(text("SELECT 1 FROM products WHERE sku = :sku FOR NO KEY UPDATE"), {"sku": sku})
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()
