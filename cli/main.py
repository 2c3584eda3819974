"""`orderflow` / `python -m cli`: operator commands.

    orderflow migrate     create or upgrade the schema (Alembic)
    orderflow seed        add the demo products (idempotent)
    orderflow init        both
    orderflow status      the system `make run` started: its URLs and each process's state
    orderflow dead-letters list|show|replay|discard|groups ...   (see cli/dead_letters.py)
    orderflow prune [--older-than 30d]   remove finished events and records (cli/prune.py)
    orderflow consumers list|pause|resume ...   (see cli/consumers.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

import bootstrap
from cli import consumers, dead_letters, local_system, prune
from config.settings import Settings, environment, mask_url
from orders.errors import OrderflowError


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit 2, not a usage block (`-h` still shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="orderflow", description="orderflow operator commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser("seed", help="add the demo products (idempotent)")
    commands.add_parser("init", help="migrate, then seed")
    commands.add_parser("status", help="the running system make run started: URLs and processes")
    dead_letters.add_parser(commands)
    prune.add_parser(commands)
    consumers.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `orderflow ... | head`: the reader has all it wanted
        _quiet_stdout()
        return 0
    except OrderflowError as exc:  # refused or not found: the message says it all
        print(f"orderflow {args.command}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, not a traceback, for an operator
        print(f"orderflow {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "status":
        print("\n".join(local_system.status()))
        return 0
    found = local_system.environment_for(args.command, environment())
    settings = Settings.from_env(found)
    if found is not None:  # the running system's broker, set up as its workers set it up: a replay
        import celeryconfig  # goes there (on RabbitMQ, into the quorum queues they declared)
        from tasks import app

        app.conf.update(celeryconfig.broker_conf(settings))
    if args.command in ("migrate", "init"):
        _migrate(settings)
    if args.command in ("seed", "init"):
        _seed(settings)
    if args.command == "dead-letters":
        dead_letters.run(args, _services(settings))
    if args.command == "prune":
        prune.run(args, settings, _services(settings).databases)
    if args.command == "consumers":
        consumers.run(args, _services(settings))
    sys.stdout.flush()  # a closed pipe shows here, inside main's handler, not at exit
    return 0


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush is silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _migrate(settings: Settings) -> None:
    """Both services' databases (the shipping one made first if it is missing)."""
    from orders.migrate import create_database_if_missing, upgrade

    seen: set[str] = set()
    for service, url in settings.database_urls.items():
        if url in seen:  # the shipping service sharing the orders database
            continue
        seen.add(url)
        if url != settings.database_url:
            create_database_if_missing(url)
        upgrade(url)
        print(f"schema up to date ({service}): {mask_url(url)}")


def _seed(settings: Settings) -> None:
    from orders.seed import seed_products

    added = seed_products(_services(settings).session_factory)
    print(f"seeded {added} new product(s)")


def _services(settings: Settings) -> bootstrap.Services:
    # An operator's command publishes only what it says (a replay): no fast path, no in-process events.
    return bootstrap.build(settings, publisher=None, in_process_events=False)


if __name__ == "__main__":
    sys.exit(main())
