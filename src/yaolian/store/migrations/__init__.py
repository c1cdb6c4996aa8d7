"""Alembic migration history of the store (run by :func:`yaolian.store.engine.upgrade`)."""
