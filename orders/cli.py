"""`orderflow` / `python -m orders`: operator commands.

    orderflow migrate     create or upgrade the schema (Alembic)
    orderflow seed        add the demo products (idempotent)
    orderflow init        both
"""

from __future__ import annotations

import argparse
import sys

from orders.settings import Settings, mask_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderflow", description="orderflow operator commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="create or upgrade the database schema")
    commands.add_parser("seed", help="add the demo products (idempotent)")
    commands.add_parser("init", help="migrate, then seed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command in ("migrate", "init"):
            _migrate(settings)
        if args.command in ("seed", "init"):
            _seed(settings)
    except Exception as exc:  # one line, not a traceback, for an operator
        print(f"orderflow {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings) -> None:
    from orders.migrate import upgrade

    upgrade(settings.database_url)
    print(f"schema up to date: {mask_url(settings.database_url)}")


def _seed(settings: Settings) -> None:
    from orders.db import make_engine, make_session_factory
    from orders.seed import seed_products

    added = seed_products(make_session_factory(make_engine(settings.database_url)))
    print(f"seeded {added} new product(s)")


if __name__ == "__main__":
    sys.exit(main())
