"""Alembic environment: runs on the connection handed over by ``yaolian.store.engine.upgrade``.

For hand use (``alembic revision --autogenerate``) see ``docs/store.md``; at run time no
``alembic.ini`` is read.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from yaolian.store.engine import create_store_engine, writing
from yaolian.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection, else open the configured URL (``sqlalchemy.url``)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_store_engine(context.config.get_main_option("sqlalchemy.url"))
    with writing(engine) as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
