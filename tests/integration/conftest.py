"""Integration fixtures: a real database (SQLite and PostgreSQL), a real broker (Redis, and
RabbitMQ for the modules marked `both_brokers`), real SMTP, and an in-process Celery worker
(the classic fixture, started per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker

import celeryconfig
import tasks
from config.settings import Settings
from devtools.smtp_sink import SmtpSink
from orders.seed import seed_products
from outbox.db import SessionFactory
from outbox.subscriptions import all_consumers
from tasks import runtime as runtime_module
from tasks.broker_setup import queue_for
from tests.support.databases import fresh_database
from tests.support.rabbitmq import fresh_vhost, purge
from tests.support.redis_server import flush

# Short waits, set through the configuration the policies read (not by patching Celery).
FAST_POLICIES = {
    "email": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
    "inventory": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
    "analytics": {"max_retries": 1, "backoff_base": 0.2, "backoff_max": 1.0},
    "customer_mail": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
    "fulfilment": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
    "shipping": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 1.0},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def shipping_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own for the shipping service, of the orders database's kind (a test
    that wants the two apart puts it in `settings.shipping_database_url`)."""
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(kind, tmp_path / "shipping") as url:
        yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_brokers` (where Redis and RabbitMQ behave differently) run on each."""
    if "broker_kind" in metafunc.fixturenames:
        kinds = ["redis", "rabbitmq"] if metafunc.definition.get_closest_marker("both_brokers") else ["redis"]
        metafunc.parametrize("broker_kind", kinds, indirect=True)


@pytest.fixture
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost for this test run (made once: rabbitmqctl takes a second or two)."""
    with fresh_vhost() as url:
        yield url


@pytest.fixture
def broker_url(broker_kind: str, request: pytest.FixtureRequest) -> str:
    """The Celery broker of this test: the run's Redis, or the run's RabbitMQ vhost."""
    if broker_kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    return str(request.getfixturevalue("rabbitmq_vhost"))


@pytest.fixture
def broker_settings(broker_url: str, redis_url: str) -> Settings:
    """What the Celery configuration is built from (the database does not matter to it).

    On RabbitMQ a short heartbeat: the worker's event loop wakes at each one, and a
    test's worker stops at once instead of after its next timer (about 10 s)."""
    if broker_url == redis_url:
        return Settings(database_url="", redis_url=redis_url)
    return Settings(database_url="", redis_url=redis_url, broker_url=broker_url, broker_heartbeat=4)


@pytest.fixture
def smtp_sink(mail_dir: Path) -> Iterator[SmtpSink]:
    """An accepting SMTP server; tests script failures through `smtp_sink.handler`."""
    with SmtpSink(mail_dir) as sink:
        yield sink


@pytest.fixture
def settings(database_url: str, broker_settings: Settings, smtp_sink: SmtpSink) -> Settings:
    return Settings(
        database_url=database_url, redis_url=broker_settings.redis_url,
        broker_url=broker_settings.broker_url, broker_heartbeat=broker_settings.broker_heartbeat,
        smtp_url=smtp_sink.url,
        relay_grace_seconds=0.0, relay_poll_seconds=0.05, retry_policies=FAST_POLICIES,
    )


@pytest.fixture
def runtime(settings: Settings) -> runtime_module.Runtime:
    rt = runtime_module.configure(settings)
    seed_products(rt.session_factory)
    return rt


@pytest.fixture
def session_factory(runtime: runtime_module.Runtime) -> SessionFactory:
    return runtime.session_factory


@pytest.fixture
def celery_app(broker_settings: Settings) -> Iterator[Celery]:
    """The project's own Celery app, configured for the test's broker (celeryconfig.broker_conf)."""
    app = tasks.app
    conf = celeryconfig.broker_conf(broker_settings)
    saved = {key: app.conf.get(key) for key in [*conf, *celeryconfig.broker_conf(Settings(
        database_url="", broker_url="amqp://x"))]}
    _use_broker(app, conf)
    yield app
    _use_broker(app, saved)


def _use_broker(app: Celery, conf: dict[str, Any]) -> None:
    """Point the app at another broker. Celery caches its connection pools, the queues, their
    exchange and the router with the configuration of their first use: drop them, so nothing
    made for another broker (another test, the shared DB 0) is reused. A queue added at run
    time (a consumer declared by a test: tasks/consumer_tasks.py) is made again, for this broker.
    (Pools not closed: a publisher thread of the previous test may still hold a connection.)"""
    configured = {q.name for q in conf.get("task_queues") or []}
    added = [name for name in app.amqp.queues if name not in configured]
    app.conf.update(conf)
    app._pool = None
    app.__dict__.pop("amqp", None)
    for name in added:
        app.amqp.queues.select_add(queue_for(app, name))


@dataclass
class Executions:
    """Every task run the worker started: (task name, queue it came from)."""

    runs: list[tuple[str, str]] = field(default_factory=list)

    def on_prerun(self, task: Any = None, **_: Any) -> None:
        info = task.request.delivery_info or {}
        self.runs.append((task.name, info.get("routing_key", "")))


@pytest.fixture
def executions() -> Iterator[Executions]:
    recorder = Executions()
    signals.task_prerun.connect(recorder.on_prerun, weak=False)
    yield recorder
    signals.task_prerun.disconnect(recorder.on_prerun)


@pytest.fixture
def worker(celery_app: Celery, runtime: runtime_module.Runtime, broker_url: str, redis_url: str,
           executions: Executions) -> Iterator[Any]:
    """A real worker consuming every consumer queue, in a thread of this process.

    Redis is flushed before it starts, so no message of an earlier test can run
    against this test's database; the worker then declares its queues again.
    """
    if broker_url == redis_url:
        flush(redis_url)
    else:
        purge(broker_url, [*all_consumers(), "notifications", "celery"])
    with start_worker(
        celery_app, pool="threads", concurrency=4, perform_ping_check=False,
        queues=[*all_consumers(), "notifications"], loglevel="WARNING", shutdown_timeout=30,
    ) as running:
        yield running


@pytest.fixture
def use_policies(runtime: runtime_module.Runtime) -> Callable[[dict[str, dict[str, Any]]], None]:
    """Change the retry policies the running worker reads (Settings.retry_policies)."""
    def apply(overrides: dict[str, dict[str, Any]]) -> None:
        merged = {k: {**v} for k, v in FAST_POLICIES.items()}
        for consumer, fields in overrides.items():
            merged.setdefault(consumer, {}).update(fields)
        runtime_module.change_settings(replace(runtime_module.current().settings, retry_policies=merged))

    return apply
