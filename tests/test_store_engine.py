"""Engine, migrations and multi-process safety of the store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select

from yaolian.errors import ValidationError, YaolianError
from yaolian.store.engine import (
    SCHEMA_HEAD,
    current_revision,
    forget_migrated,
    head_revision,
    normalise_url,
    open_engine,
    writing,
)
from yaolian.store.schema import enterprise, metadata


def test_migrated_to_head_and_schema_matches_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    # The migrated database is exactly schema.py: no table, column or index missing or extra.
    assert diffs == []
    assert head_revision() == SCHEMA_HEAD  # the constant a store at head is known by


def test_a_store_behind_head_is_migrated_when_opened(tmp_path: Path) -> None:
    """A store an older yaolian left behind is brought to head when opened (here 0010 → head:
    a withdrawn 停产报告 keeps counting as withdrawn, codes in transit get their index); one at
    head is opened without alembic's machinery."""
    path = tmp_path / "old.db"
    engine = open_engine(str(path))
    engine.dispose()
    with sqlite3.connect(path) as db:  # as revision 0010 left it
        db.execute("ALTER TABLE supply_discontinuation DROP COLUMN withdrawn_us")
        db.execute("ALTER TABLE supply_discontinuation ADD COLUMN withdrawn BOOLEAN NOT NULL")
        db.executemany(
            "INSERT INTO supply_discontinuation (product, holder, stop_date, reason, "
            "remaining_packs, filed_us, withdrawn) VALUES ('8819499', 'H', '2026-03-01', 'r', 0, "
            "?, ?)",
            [(1_000, 0), (2_000, 1)],
        )
        db.execute("DROP INDEX ix_code_state_open_ship")  # 0012
        db.execute("UPDATE alembic_version SET version_num = '0010'")
    forget_migrated(engine)
    reopened = open_engine(str(path))
    try:
        with reopened.connect() as conn:
            assert current_revision(conn) == SCHEMA_HEAD
            rows = conn.exec_driver_sql(
                "SELECT filed_us, withdrawn_us FROM supply_discontinuation ORDER BY filed_us"
            ).all()
            columns = {c["name"] for c in inspect(conn).get_columns("supply_discontinuation")}
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("code_state")}
        assert [tuple(r) for r in rows] == [(1_000, None), (2_000, 2_000)]
        assert "withdrawn" not in columns
        assert "ix_code_state_open_ship" in indexes
    finally:
        reopened.dispose()


def test_sqlite_file_settings(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "store.db"
    engine = open_engine(str(path))
    try:
        assert path.exists()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
            # FAST: deleted cells are zeroed on pages written anyway, freed pages are not
            # rewritten (Debian's SQLite defaults to 1, which doubles the I/O of a rebuild)
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 2
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_store_from_a_newer_yaolian_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = open_engine(str(path))
    forget_migrated(first)  # as a new process would: check the revision again
    first.dispose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(ValidationError, match=r"newer yaolian .*9999") as refused:
        open_engine(str(path))
    assert refused.value.place == "database"


def test_url_resolution() -> None:
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:////tmp/x.db").get_backend_name() == "sqlite"
    with pytest.raises(YaolianError, match="unsupported database"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(YaolianError, match="database URL"):
        normalise_url("postgresql://u@h:notaport/db")


_WRITER = """
import sys
from yaolian.store.engine import open_engine
from yaolian.store.masterdata import upsert_enterprise, uscc_check_char
engine = open_engine(sys.argv[1])
tag = sys.argv[2]
for i in range(25):
    body = f"91{tag}{i:013d}"[:17]
    upsert_enterprise(engine, body + uscc_check_char(body), f"E{tag}{i}", "pharmacy")
"""


def test_two_processes_open_and_write_the_same_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, tag], stderr=subprocess.PIPE)
        for tag in ("11", "22")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(enterprise)).scalar() == 50
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        engine.dispose()


def _last_analysed(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(
            conn.exec_driver_sql(
                "SELECT relname, last_analyze FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema()"
            ).all()
        )


def test_bulk_capture_refreshes_postgres_planner_statistics(pg_engine: Engine) -> None:
    """A capture that grows tables by a quarter or more VACUUM-ANALYZEs them (the planner then
    knows the new rows); a small one leaves them to autovacuum."""
    from datetime import UTC, datetime

    from yaolian.codes.nmpa import nmpa_code_uri
    from yaolian.store.ingest import capture_document
    from yaolian.trace.builders import document, object_event

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    codes = [nmpa_code_uri(f"8600001{i:013d}") for i in range(20_010)]
    before = _last_analysed(pg_engine)
    bulk = document(
        [
            object_event(codes[i : i + 10_000], t0, "commissioning", "active", action="ADD")
            for i in (0, 10_000)
        ]
    )
    assert capture_document(pg_engine, bulk).accepted == 2
    after = _last_analysed(pg_engine)
    for table in ("code", "code_state", "event_epc"):
        assert after[table] is not None and after[table] != before.get(table)
    small = document([object_event(codes[-10:], t0, "commissioning", "active", action="ADD")])
    assert capture_document(pg_engine, small).accepted == 1
    assert _last_analysed(pg_engine) == after


def test_writers_take_turns_on_postgres(pg_engine: Engine) -> None:
    """A second write transaction waits until the first commits (as SQLite's one writer does):
    it then reads what the first wrote, so its fold cannot overwrite the first one's update."""
    seen: list[int] = []

    def second() -> None:
        with writing(pg_engine) as other:
            seen.append(other.execute(select(func.count()).select_from(enterprise)).scalar_one())

    worker = threading.Thread(target=second)
    with writing(pg_engine) as conn:
        conn.execute(
            enterprise.insert().values(uscc="91110000MA00000013", name="first", role="distributor")
        )
        first_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        worker.start()
        with pg_engine.connect() as watcher:  # wait until the second writer waits for the lock
            while not watcher.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND pid <> %s",
                (first_pid,),
            ).scalar():
                watcher.rollback()
                assert worker.is_alive() and not seen, "the second writer did not wait"
                time.sleep(0.01)
    worker.join()
    assert seen == [1]


def test_a_writer_kept_waiting_past_the_busy_timeout_is_told_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: while another process's writer holds the store past the busy timeout, a write
    is a BusyError that says so (a 503 with Retry-After over HTTP), not "database is locked"
    (an internal error in the CLI, a 500 over HTTP); nothing is written."""
    from fastapi.testclient import TestClient

    from yaolian.api.app import create_app
    from yaolian.epcis.model import parse_time
    from yaolian.errors import BusyError
    from yaolian.store import engine as store_engine
    from yaolian.store.access import create_key
    from yaolian.store.masterdata import upsert_enterprise, uscc_check_char

    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    holder, waiter = open_engine(url, create=True), open_engine(url)
    key = create_key(holder, None, "regulator")
    uscc = "91350100M00010000" + uscc_check_char("91350100M00010000")
    try:
        with writing(holder), TestClient(create_app(url)) as http:
            with pytest.raises(BusyError) as busy:
                upsert_enterprise(waiter, uscc, "某医药", "distributor")
            assert busy.value.status == 503 and "try again" in busy.value.reason
            response = http.post(
                "/recalls",
                json={"class": 2, "reason": "x", "batches": ["8600001/L1"]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "10"
            assert response.json()["title"] == "Store busy"
        with waiter.connect() as conn:
            assert conn.execute(select(func.count()).select_from(enterprise)).scalar() == 0
        upsert_enterprise(waiter, uscc, "某医药", "distributor")  # free again
        # an accepted capture job is queued work: it waits for its turn instead of failing
        from yaolian.api.epcis import _run_capture
        from yaolian.store.jobs import create_job, get_job
        from yaolian.trace.builders import document, object_event

        pack = "urn:epc:id:sgtin:6901234.067890.1"
        when = parse_time("2026-03-01T08:00:00+08:00")
        doc = document([object_event([pack], when, "commissioning", "active", action="ADD")])
        job_id = create_job(waiter)
        taken, release = threading.Event(), threading.Event()

        def hold() -> None:
            with writing(holder):
                taken.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        taken.wait(10)
        threading.Timer(1.0, release.set).start()
        _run_capture(waiter, job_id, doc, "rollback", None)  # three or four turns of 0.3 s
        thread.join()
        job = get_job(waiter, job_id)
        assert job.success is True and job.accepted == 1, job
    finally:
        holder.dispose()
        waiter.dispose()
