"""Open the store: SQLite (WAL, the embedded default) or PostgreSQL (psycopg 3), migrated.

Both engines run the same SQLAlchemy Core code. On SQLite every connection gets the pragmas a
busy multi-process store needs (WAL, ``synchronous=NORMAL``, foreign keys, a busy timeout, a
larger page cache, ``secure_delete=FAST``) and transactions are begun explicitly, so writers can
take the write lock up front (:func:`writing`) instead of failing on a lock upgrade. Migrations
are alembic revisions under ``store/migrations`` run programmatically — no ``alembic.ini`` at
run time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from yaolian.config import database_url
from yaolian.errors import BusyError, ValidationError, YaolianError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SCHEMA_HEAD = "0012"  # the newest migration's revision (a test holds it to the scripts)
SQLITE_BUSY_TIMEOUT_MS = 60_000
_IMMEDIATE = "yaolian_immediate"  # execution option: SQLite ``BEGIN IMMEDIATE``
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def normalise_url(url: str | None, *, create: bool = True) -> URL:
    """Resolve ``url`` with :func:`yaolian.config.database_url` and pick the driver.

    ``postgresql://`` (or ``postgres://``) uses psycopg 3; ``sqlite:///path`` a file whose parent
    folder is created — or, with ``create=False``, a file that must exist already (a mistyped
    path is then an error rather than a new empty store). Anything else is refused with a clear
    error.
    """
    text = database_url(url)
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise YaolianError(f"not a database URL: {exc}", place="database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database).expanduser()
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.is_file():
                raise YaolianError(
                    f"no database at {path}: `yaolian db init` or a first `yaolian capture` "
                    "creates one",
                    place="database",
                )
        return parsed.set(drivername="sqlite")
    raise YaolianError(
        f"unsupported database {backend!r}; use a SQLite file or postgresql://…",
        place="database URL",
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA cache_size = -65536")  # 64 MiB
    cur.execute("PRAGMA temp_store = MEMORY")
    cur.execute("PRAGMA mmap_size = 268435456")
    # Debian's SQLite is built with secure_delete on: every freed page is overwritten with zeros,
    # so emptying a projection for a rebuild wrote the whole table again (1.1M EPC rows: 2.5 s →
    # 0.2 s). FAST still zeroes deleted cells on the pages a change writes anyway.
    cur.execute("PRAGMA secure_delete = FAST")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_sqlite(bind: Engine | Connection) -> bool:
    """True when ``bind`` talks to SQLite."""
    return bind.dialect.name == "sqlite"


def create_store_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine for ``url`` with the store's connection settings, not migrated (``create``:
    see :func:`normalise_url`)."""
    parsed = normalise_url(url, create=create)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 60})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def open_engine(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Engine:
    """Open the store at ``url`` (``--db`` value, URL, path or ``None`` for the default).

    With ``migrate`` the schema is brought to the newest alembic revision first (once per URL and
    process; safe when several processes open the same database at once). ``create=False``: a
    SQLite file must exist already (commands that read or add to a store, as opposed to those
    that start one).
    """
    engine = create_store_engine(url, create=create)
    if migrate:
        upgrade(engine)
    return engine


WRITER_LOCK = 7242083430  # PostgreSQL advisory lock id: the store's one writer at a time


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction, one at a time on either backend: ``BEGIN IMMEDIATE`` on SQLite (the
    write lock up front, waiting up to the busy timeout for other writers); on PostgreSQL a
    transaction-scoped advisory lock taken first, waiting for the writer before it.

    The projections are folds in event-time order over shared rows (a code's state, what its
    container holds, an alert's evidence, a site's stock), recomputed from what the transaction
    reads: two PostgreSQL writers at once would each fold into the state they read and the
    later commit would overwrite the earlier one's update (a sale lost, a hand-over missing).
    Readers never wait. A SQLite writer still waiting after the busy timeout
    (:data:`SQLITE_BUSY_TIMEOUT_MS`: another capture holds the store) gets a
    :class:`~yaolian.errors.BusyError` (503 over HTTP) rather than the driver's "database is
    locked"."""
    try:
        with engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
            yield conn
    except OperationalError as exc:
        if "database is locked" not in str(exc.orig):
            raise
        waited = SQLITE_BUSY_TIMEOUT_MS / 1000
        raise BusyError(
            f"another writer held the store for over {waited:g} s (a large capture or a "
            "rebuild); nothing was written — try again when it has finished",
            place="database",
        ) from None


VACUUM_MIN_BYTES = 1 << 18  # a table smaller than this (256 KiB) cannot mislead a plan much
VACUUM_GROWTH = 0.25  # growth since the last VACUUM/ANALYZE that makes a capture do it
_GROWN_TABLES_SQL = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
    "AND pg_relation_size(c.oid) > GREATEST(%(floor)s, "
    "(1 + %(growth)s) * c.relpages::bigint * current_setting('block_size')::int) "
    "ORDER BY c.relname"
)


STATS_CHECK_ROWS = 1_000  # a capture of this many EPC rows always checks the tables' growth
STATS_CHECK_INTERVAL_S = 5.0  # smaller ones check at most this often per database
_stats_checked: dict[str, float] = {}


def refresh_statistics(engine: Engine, epc_rows: int) -> list[str]:
    """PostgreSQL: ``VACUUM (ANALYZE)`` the tables that grew by :data:`VACUUM_GROWTH` or more
    since PostgreSQL last measured them (and are over :data:`VACUUM_MIN_BYTES`); returns their
    names. Called after every capture (``epc_rows``: the EPC rows it wrote; a small capture
    checks at most every :data:`STATS_CHECK_INTERVAL_S` — the check is a catalog query, a
    tenth of a single-event capture); nothing on SQLite.

    The planner knows a freshly bulk-loaded table only once autovacuum gets to it (a minute or
    more later); until then it takes a table of 100k rows for one of a few rows and loops over
    it (a container-history look-up after a 20k-pack commissioning ran 4 s instead of 28 ms),
    and index-only scans visit the table for every row (forward trace of a 100k-pack batch
    498 ms instead of 107 ms). Bulk loads are when captures follow each other fastest, so the
    capture does it itself, for the tables it grew — a pallet's shipment adds a few event rows
    but a custody row per pack inside. With the threshold a share of the table, that happens a
    logarithmic number of times over a store's life, and VACUUM reads only the pages written
    since.
    """
    if engine.dialect.name != "postgresql":
        return []
    url, now = str(engine.url), time.monotonic()
    if epc_rows < STATS_CHECK_ROWS and now - _stats_checked.get(url, -1e9) < STATS_CHECK_INTERVAL_S:
        return []
    _stats_checked[url] = now
    with engine.connect() as conn:
        grown = list(
            conn.exec_driver_sql(
                _GROWN_TABLES_SQL, {"floor": VACUUM_MIN_BYTES, "growth": VACUUM_GROWTH}
            ).scalars()
        )
    if grown:
        vacuum_analyze(engine, grown)
    return grown


def vacuum_analyze(engine: Engine, tables: Sequence[str] = ()) -> None:
    """PostgreSQL: ``VACUUM (ANALYZE)`` of ``tables`` (default: the whole database) — the
    planner's statistics, and pages marked all-visible so that index-only scans stay
    index-only. Nothing on SQLite."""
    if engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t}"' for t in tables)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {names}")


def alembic_config(url: str | None = None) -> Config:
    """Alembic configuration of the store's migrations (for ``alembic.command`` calls, e.g.
    ``command.revision(alembic_config(url), "what changed", autogenerate=True)``)."""
    from alembic.config import Config  # alembic: loaded when a store is migrated or inspected

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str | None:
    """The newest revision id of the store's migration history."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database at ``conn`` is at (``None`` when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _at_head(engine: Engine) -> bool:
    """Whether the store is at :data:`SCHEMA_HEAD` already: one look at its version table,
    without alembic (a command that only reads starts sooner and takes no write lock)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return found == [SCHEMA_HEAD]


def known_revisions() -> set[str]:
    """Every schema revision this version of yaolian has a migration for."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the alembic migrations up to ``revision`` in one transaction.

    Inside :func:`writing`, so a second process waits for the first and then finds nothing to
    do.
    """
    key = engine.url.render_as_string(hide_password=False)
    with _migrate_lock:
        if revision == "head" and (key in _migrated or _at_head(engine)):
            _migrated.add(key)
            return
        from alembic import command

        head = head_revision() if revision == "head" else revision
        with writing(engine) as conn:
            current = current_revision(conn)
            if current is not None and current not in known_revisions():
                raise ValidationError(
                    f"the store was migrated by a newer yaolian (schema revision {current}; this "
                    f"one knows up to {head_revision()}): upgrade yaolian to open it",
                    place="database",
                )
            if current != head:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        if revision == "head":
            _migrated.add(key)


def forget_migrated(engine: Engine) -> None:
    """Drop the in-process note that ``engine``'s database is migrated (after dropping it)."""
    _migrated.discard(engine.url.render_as_string(hide_password=False))
