"""Runtime settings from the environment, with embedded defaults (SQLite in the data dir)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TypeVar

from yaolian.errors import ValidationError

DATABASE_URL_ENV = "YAOLIAN_DATABASE_URL"


def data_dir() -> Path:
    """Per-user data folder (``$YAOLIAN_HOME`` or ``$XDG_DATA_HOME/yaolian``)."""
    home = os.environ.get("YAOLIAN_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "yaolian"


def default_database_url() -> str:
    """``$YAOLIAN_DATABASE_URL`` (a URL or a SQLite file path), else a SQLite file in the data
    folder."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return _as_url(url)
    return f"sqlite:///{data_dir() / 'yaolian.db'}"


def database_url(db: str | None) -> str:
    """Resolve a ``--db`` option: a URL as is, a path as a SQLite file, nothing as the default."""
    if not db:
        return default_database_url()
    return _as_url(db)


def _as_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).expanduser().resolve()}"


WEBHOOK_HOSTS_ENV = "YAOLIAN_WEBHOOK_HOSTS"


def webhook_hosts() -> tuple[str, ...] | None:
    """Hosts subscriptions may post to (``$YAOLIAN_WEBHOOK_HOSTS``: comma-separated names, a
    leading dot for a whole domain, e.g. ``erp.example.cn,.partner.cn``); ``None``: any."""
    text = os.environ.get(WEBHOOK_HOSTS_ENV, "").strip()
    if not text:
        return None
    return tuple(h.strip().lower() for h in text.split(",") if h.strip())


Number = TypeVar("Number", int, float)


def env_number(name: str, default: Number, minimum: Number) -> Number:
    """``$name`` as a number of ``default``'s type (a whole number for an ``int``), at least
    ``minimum``; ``default`` when unset or blank. Anything else is refused, naming the variable
    (a typo in a setting is not a traceback in every capture)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    kind = type(default)
    try:
        value = kind(text) if text.isascii() else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum:
        what = "a whole number" if kind is int else "a number"
        raise ValidationError(f"{text!r} is not {what} of at least {minimum}", place=name)
    return value
