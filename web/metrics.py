"""`/metrics` for Prometheus: deliveries, dead letters, retries and outbox lag, per consumer; each
consumer's status (running, paused, breaker open), held deliveries and how long its breaker is open.

A custom collector reads the database on each scrape (outbox/monitoring.py),
so it works the same behind several gunicorn workers. Open like Flower's
/metrics: it holds counts, no customer data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from outbox import consumer_control
from outbox.clock import utcnow
from outbox.db import SessionFactory
from outbox.monitoring import snapshot
from outbox.states import DEAD, HELD, DeliveryState
from outbox.subscriptions import all_consumers

log = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)
STATES = tuple(DeliveryState)
CONSUMER_STATUSES = ("running", "paused", "breaker_open", "breaker_half_open")


class DatabaseCollector(Collector):
    def __init__(self, session_factory: SessionFactory) -> None:
        self._session_factory = session_factory

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("orderflow_database_up", "1 if the metrics could be read from the database")
        try:
            snap = snapshot(self._session_factory)
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        deliveries = GaugeMetricFamily("orderflow_deliveries", "Delivery records by consumer and state",
                                       labels=["consumer", "state"])
        dead = GaugeMetricFamily("orderflow_dead_letters", "Dead letters waiting for an operator",
                                 labels=["consumer"])
        retries = CounterMetricFamily("orderflow_delivery_retries", "Failed attempts that were retried",
                                      labels=["consumer"])
        for consumer in all_consumers():  # every series exists from the start, at 0
            for state in STATES:
                deliveries.add_metric([consumer, state], snap.deliveries.get((consumer, state), 0))
            dead.add_metric([consumer], snap.deliveries.get((consumer, DEAD), 0))
            retries.add_metric([consumer], snap.retries.get(consumer, 0))
        yield from (deliveries, dead, retries)
        yield from _consumer_metrics(self._session_factory, snap.deliveries)
        yield GaugeMetricFamily("orderflow_outbox_unpublished", "Outbox events not yet published",
                                value=snap.unpublished)
        yield GaugeMetricFamily("orderflow_outbox_lag_seconds",
                                "Age of the oldest unpublished outbox event (0 when none)",
                                value=snap.outbox_lag_seconds)


def _consumer_metrics(session_factory: SessionFactory,
                      deliveries: dict[tuple[str, str], int]) -> Iterator[Metric]:
    """Each consumer's status (1 for the one it is in), held deliveries, how long its breaker is open."""
    status = GaugeMetricFamily("orderflow_consumer_status",
                               "1 for the consumer's current status: running, paused, breaker_open, "
                               "breaker_half_open", labels=["consumer", "status"])
    held = GaugeMetricFamily("orderflow_consumer_held", "Deliveries held (consumer paused or breaker open)",
                             labels=["consumer"])
    open_for = GaugeMetricFamily("orderflow_breaker_open_seconds",
                                 "How long the consumer's breaker has been open (0 when closed)",
                                 labels=["consumer"])
    now = utcnow()
    for consumer, view in consumer_control.views(session_factory).items():
        for name in CONSUMER_STATUSES:
            status.add_metric([consumer, name], 1 if view.status == name else 0)
        held.add_metric([consumer], deliveries.get((consumer, HELD), 0))
        opened = view.breaker.opened_at if view.breaker.state != "closed" else None
        open_for.add_metric([consumer], max(0.0, (now - opened).total_seconds()) if opened else 0.0)
    yield from (status, held, open_for)


def register(app: Flask, session_factory: SessionFactory) -> None:
    registry = CollectorRegistry(auto_describe=False)  # per app: tests build many apps
    registry.register(DatabaseCollector(session_factory))
    app.extensions["orderflow_metrics"] = registry
    app.register_blueprint(blueprint)


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(current_app.extensions["orderflow_metrics"]),
                    content_type=CONTENT_TYPE_LATEST)
