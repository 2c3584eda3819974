"""Alembic environment: the URL comes from the caller (orders.migrate) or DATABASE_URL."""

from __future__ import annotations

from alembic import context

from config.settings import Settings
from outbox.db import make_engine
from outbox.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things: let Alembic rebuild tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
