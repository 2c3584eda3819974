"""Which broker, which status feed, which countdowns: decided from the settings alone."""

from __future__ import annotations

from celery import Celery

import celeryconfig
from config.settings import Settings
from tasks.delays import broker_countdown

RABBIT = "amqp://guest:guest@127.0.0.1:5672/shop"
PG = "postgresql+psycopg://postgres@db/shop"


def app_for(settings: Settings) -> Celery:
    app = Celery("broker-choice")
    app.config_from_object("celeryconfig")
    app.conf.update(celeryconfig.broker_conf(settings))
    return app


def test_redis_stays_the_default_and_broker_url_falls_back_to_redis_url():
    assert Settings.from_env({}).broker == "redis://127.0.0.1:6379/0"
    assert Settings.from_env({"REDIS_URL": "redis://r:1/2"}).broker == "redis://r:1/2"
    assert Settings.from_env({"REDIS_URL": "redis://r:1/2", "BROKER_URL": RABBIT}).broker == RABBIT


def test_the_status_feed_needs_no_redis_beside_rabbitmq():
    assert Settings(database_url=PG, redis_url="redis://r/0").status_feed_url == "redis://r/0"
    assert Settings(database_url=PG, broker_url=RABBIT).status_feed_url == PG  # LISTEN/NOTIFY
    assert Settings(database_url="sqlite:///x", broker_url=RABBIT).status_feed_url == ""  # polling


def test_rabbitmq_queues_are_durable_quorum_queues_on_a_topic_exchange():
    queues = celeryconfig.broker_conf(Settings(database_url="", broker_url=RABBIT))["task_queues"]
    email = next(q for q in queues if q.name == "email")
    assert email.durable and email.queue_arguments == {"x-queue-type": "quorum"}
    assert (email.exchange.name, email.exchange.type, email.routing_key) == ("orderflow", "topic", "email")
    classic = celeryconfig.broker_conf(Settings(database_url="", broker_url=RABBIT,
                                                rabbitmq_queue_type="classic"))["task_queues"]
    assert {q.queue_arguments["x-queue-type"] for q in classic} == {"classic"}


def test_countdowns_are_whole_seconds_only_on_quorum_queues():
    quorum = app_for(Settings(database_url="", broker_url=RABBIT))
    assert [broker_countdown(quorum, s) for s in (0.2, 1.0, 1.01, None)] == [1.0, 1.0, 2.0, None]
    classic = app_for(Settings(database_url="", broker_url=RABBIT, rabbitmq_queue_type="classic"))
    assert broker_countdown(classic, 0.2) == 0.2
    assert broker_countdown(app_for(Settings(database_url="")), 0.2) == 0.2
