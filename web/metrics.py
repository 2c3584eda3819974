"""`/metrics` for Prometheus: deliveries, dead letters, retries per consumer; outbox lag per service; each
consumer's status (running, paused, breaker open), held deliveries and how long its breaker is open.

A custom collector reads the database on each scrape (outbox/monitoring.py),
so it works the same behind several gunicorn workers. Open like Flower's
/metrics: it holds counts, no customer data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from outbox import consumer_control
from outbox.clock import utcnow
from outbox.databases import ServiceDatabases
from outbox.monitoring import Snapshot, snapshot
from outbox.states import DEAD, HELD, DeliveryState
from outbox.subscriptions import all_consumers

log = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)
STATES = tuple(DeliveryState)
CONSUMER_STATUSES = ("running", "paused", "breaker_open", "breaker_half_open")


class DatabaseCollector(Collector):
    """Every service's database (outbox/databases.py): deliveries and consumers each from the
    database that keeps them, the outbox series labelled by service (an alert per relay)."""

    def __init__(self, databases: ServiceDatabases) -> None:
        self._databases = databases

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("orderflow_database_up", "1 if the metrics could be read from the database",
                               labels=["service"])
        unpublished = GaugeMetricFamily("orderflow_outbox_unpublished", "Outbox events not yet published",
                                        labels=["service"])
        lag = GaugeMetricFamily("orderflow_outbox_lag_seconds",
                                "Age of the oldest unpublished outbox event (0 when none)",
                                labels=["service"])
        snaps: dict[str, Snapshot] = {}
        for database in self._databases.distinct():
            service = "+".join(self._databases.services_in(database))  # two services may share one
            try:
                snaps[service] = snapshot(database)
            except Exception as exc:  # a scrape must answer even when a database does not
                log.warning("metrics: %s database unavailable (%s)", service, type(exc).__name__)
                up.add_metric([service], 0)
                continue
            up.add_metric([service], 1)
            unpublished.add_metric([service], snaps[service].unpublished)
            lag.add_metric([service], snaps[service].outbox_lag_seconds)
        yield from (up, unpublished, lag)
        if len(snaps) < len(self._databases.distinct()):
            return  # per-consumer counts from some databases only would read as wrong numbers
        counts = Counter[tuple[str, str]]()
        retried = Counter[str]()
        for snap in snaps.values():
            counts.update(snap.deliveries)
            retried.update(snap.retries)
        deliveries = GaugeMetricFamily("orderflow_deliveries", "Delivery records by consumer and state",
                                       labels=["consumer", "state"])
        dead = GaugeMetricFamily("orderflow_dead_letters", "Dead letters waiting for an operator",
                                 labels=["consumer"])
        retries = CounterMetricFamily("orderflow_delivery_retries", "Failed attempts that were retried",
                                      labels=["consumer"])
        for consumer in all_consumers():  # every series exists from the start, at 0
            for state in STATES:
                deliveries.add_metric([consumer, state], counts.get((consumer, state), 0))
            dead.add_metric([consumer], counts.get((consumer, DEAD), 0))
            retries.add_metric([consumer], retried.get(consumer, 0))
        yield from (deliveries, dead, retries)
        yield from _consumer_metrics(self._databases, counts)


def _consumer_metrics(databases: ServiceDatabases,
                      deliveries: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
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
    for consumer, view in consumer_control.views_everywhere(databases).items():
        for name in CONSUMER_STATUSES:
            status.add_metric([consumer, name], 1 if view.status == name else 0)
        held.add_metric([consumer], deliveries.get((consumer, HELD), 0))
        opened = view.breaker.opened_at if view.breaker.state != "closed" else None
        open_for.add_metric([consumer], max(0.0, (now - opened).total_seconds()) if opened else 0.0)
    yield from (status, held, open_for)


def register(app: Flask, databases: ServiceDatabases) -> None:
    registry = CollectorRegistry(auto_describe=False)  # per app: tests build many apps
    registry.register(DatabaseCollector(databases))
    app.extensions["orderflow_metrics"] = registry
    app.register_blueprint(blueprint)


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(current_app.extensions["orderflow_metrics"]),
                    content_type=CONTENT_TYPE_LATEST)
