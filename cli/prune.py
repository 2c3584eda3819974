"""`orderflow prune [--older-than 30d]`: remove finished events and their delivery records now.

The relay process does the same every ORDERFLOW_PRUNE_INTERVAL (tasks/pruner.py); this is for
an operator who wants it now, or runs it from cron instead. A retention shorter than the
retry horizon is refused (outbox/retention.py says why), as at start-up.
"""

from __future__ import annotations

import argparse
from typing import Any

import orders.subscriptions  # noqa: F401  (the declared consumers: their policies make the horizon)
import shipping.subscriptions  # noqa: F401
from config.settings import Settings, format_duration, parse_duration
from orders.errors import InvalidArgument
from outbox.databases import ServiceDatabases
from outbox.retention import Pruned, declared_horizon, prune, retention_problem


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("prune", help="remove finished outbox events and delivery records "
                                               "older than the retention")
    parser.add_argument("--older-than", help="the retention for this run: 30d, 12h, 90m, 0s "
                                             "(default: ORDERFLOW_RETENTION)")
    parser.add_argument("--batch-size", type=int, help="events per batch (default: ORDERFLOW_PRUNE_BATCH)")
    parser.add_argument("--max-seconds", type=float, help="stop after this long (run it again to go on)")


def run(args: argparse.Namespace, settings: Settings, databases: ServiceDatabases) -> None:
    retention = settings.retention_seconds
    name = "ORDERFLOW_RETENTION"
    if args.older_than is not None:
        try:
            retention = parse_duration(args.older_than, name="--older-than")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        name = "--older-than"
    horizon = declared_horizon(retry_overrides=settings.retry_policies,
                               task_time_limit=settings.task_time_limit,
                               visibility_timeout=settings.broker_visibility_timeout,
                               reconcile_after=settings.reconcile_after_seconds)
    problem = retention_problem(retention, horizon, name=name)
    if problem:
        raise InvalidArgument(f"refused: {problem}")
    batch_size = args.batch_size or settings.prune_batch_size
    if batch_size < 1:
        raise InvalidArgument("--batch-size must be >= 1")
    # Every service's database, each event's records read where its consumers keep them.
    done = Pruned()
    for database in databases.distinct():
        left = None if args.max_seconds is None else max(0.0, args.max_seconds - done.seconds)
        part = prune(database, retention_seconds=retention, batch_size=batch_size, max_seconds=left,
                     records_of=lambda subscriber: databases.of_consumer(subscriber.consumer))
        done.add(part)
        done.batches += part.batches
        done.seconds += part.seconds
    if done.events == 0:
        print(f"nothing to prune: no event finished more than {format_duration(retention)} ago "
              f"({done.seconds:.2f}s)")
        return
    print(f"{done.describe()} (finished before {format_duration(retention)} ago)")
