"""Shared fixtures: a real store on SQLite and on PostgreSQL, migrated once, emptied per test.

* ``db_url`` — parametrised over ``sqlite`` (a temp file) and ``postgres`` (a fresh database
  created on ``$YAOLIAN_TEST_PG_URL``'s server for this session / xdist worker, dropped at the
  end). The database is migrated and every table is empty when the test starts.
* ``engine`` — the migrated engine for ``db_url`` (shared within the session; do not dispose).
* ``sqlite_url`` / ``sqlite_engine`` — the same for tests that need only SQLite.

No PostgreSQL server answering → the postgres cases are skipped, unless ``YAOLIAN_REQUIRE_PG=1``
(CI), then they fail. Other layers may add fixtures at the end of this file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from sqlalchemy import Engine, make_url, select

from yaolian.store import access, projections
from yaolian.store.engine import forget_migrated, is_sqlite, open_engine
from yaolian.store.schema import metadata

P = TypeVar("P", bound=projections.Projector)

PG_URL_ENV = "YAOLIAN_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

_engines: dict[str, Engine] = {}


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the per-user data folder (default SQLite file) inside the test's temp dir."""
    saved = {k: os.environ.get(k) for k in ("YAOLIAN_HOME", "YAOLIAN_DATABASE_URL")}
    os.environ["YAOLIAN_HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ.pop("YAOLIAN_DATABASE_URL", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _maintenance_conninfo(server_url: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _sqlite_session_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("store") / "yaolian.db"
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _postgres_session_url(worker_id: str) -> Iterator[str]:
    """A fresh database on the test server, unique to this session / worker; dropped after."""
    server = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    maintenance = _maintenance_conninfo(server)
    try:
        admin = psycopg.connect(maintenance, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        message = f"PostgreSQL at {server} does not answer: {exc}"
        if os.environ.get("YAOLIAN_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"yaolian_t_{worker_id}_{os.getpid()}_{secrets.token_hex(3)}".lower()
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(server).set(drivername="postgresql", database=name)
        text = url.render_as_string(hide_password=False)
        try:
            yield text
        finally:
            engine = _engines.pop(text, None)
            if engine is not None:
                forget_migrated(engine)
                engine.dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty(engine: Engine) -> None:
    """Delete every row of every table (fast, keeps the schema)."""
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if is_sqlite(conn):
            for name in tables:
                conn.exec_driver_sql(f'DELETE FROM "{name}"')
        else:
            names = ", ".join(f'"{n}"' for n in tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    access.clear_key_cache()


PROJECTION_TABLES = (
    "code_state",
    "aggregation",
    "custody",
    "dispense",
    "code_sensor",
    "alert",
    "batch_party",
    "supply_movement",
)


def table_rows(
    engine: Engine,
    tables: Iterable[str] = PROJECTION_TABLES,
    skip: Collection[str] = ("id",),
) -> dict[str, list[str]]:
    """Every row of each table, without the ``skip`` columns, as sorted text: two stores (or
    one before and after a rebuild) compare table by table."""
    with engine.connect() as conn:
        return {
            name: sorted(
                repr(tuple(r))
                for r in conn.execute(
                    select(*(c for c in metadata.tables[name].c if c.name not in skip))
                )
            )
            for name in tables
        }


@contextmanager
def registered(projector: P) -> Iterator[P]:
    """``projector`` registered with the store for the block (a test's recording projector)."""
    projections.register(projector)
    try:
        yield projector
    finally:
        projections._registry.pop(projector.name, None)


def _clean_engine(url: str) -> Engine:
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = open_engine(url)
    _empty(engine)
    return engine


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of an empty, migrated store: SQLite file or PostgreSQL database."""
    url: str = request.getfixturevalue(f"_{request.param}_session_url")
    _clean_engine(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Engine:
    """The migrated, empty store engine for ``db_url`` (shared; do not dispose)."""
    return _engines[db_url]


@pytest.fixture
def sqlite_url(_sqlite_session_url: str) -> str:
    """URL of an empty, migrated SQLite store."""
    _clean_engine(_sqlite_session_url)
    return _sqlite_session_url


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Engine:
    """The migrated, empty SQLite store engine (shared; do not dispose)."""
    return _engines[sqlite_url]


@pytest.fixture
def pg_engine(_postgres_session_url: str) -> Engine:
    """The migrated, empty PostgreSQL store engine (shared; do not dispose)."""
    return _clean_engine(_postgres_session_url)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """xdist worker name (``gw0`` …), ``master`` without xdist."""
    workerinput = getattr(request.config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "master"


# ── trace & verify: a small supply chain with known answers (tests/test_trace*, test_verify*,
# test_recall*) ─────────────────────────────────────────────────────────────────────────────
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from yaolian.epcis.model import Event  # noqa: E402

Codes = str | list[str]  # one code URI or several


class TraceWorld:
    """Enterprises, sites (with coordinates) and products, plus helpers to build and capture
    events: a manufacturer in Beijing, a distributor in Tianjin, pharmacy A in Beijing and
    pharmacy B in Guangzhou; 8600001 (24 capsules per pack) and 8600004 (insulin, 2–8 °C)."""

    T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)

    def __init__(self, engine: Engine) -> None:
        from yaolian.codes.epc import pgln_uri, sgln_uri
        from yaolian.codes.gs1 import with_check_digit
        from yaolian.store.masterdata import (
            upsert_enterprise,
            upsert_product,
            upsert_site,
            uscc_check_char,
        )

        self.engine = engine
        self.usccs: dict[str, str] = {}
        self.parties: dict[str, str] = {}
        self.sites: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        actors = [  # name, role, site kind, lat, lon
            ("MFR", "示例制药有限公司", "manufacturer", "factory", 39.90, 116.40),
            ("DIST", "示例医药物流有限公司", "distributor", "warehouse", 39.13, 117.20),
            ("PHA", "北京示例大药房", "pharmacy", "pharmacy", 39.95, 116.30),
            ("PHB", "广州示例大药房", "pharmacy", "pharmacy", 23.13, 113.26),
        ]
        for n, (tag, name, role, kind, lat, lon) in enumerate(actors, start=1):
            body = f"91110000MA{n:07d}"
            uscc = body + uscc_check_char(body)
            party = pgln_uri(with_check_digit(f"69012340000{n}"))
            site = sgln_uri(with_check_digit(f"69012341000{n}"))
            self.ids[tag] = upsert_enterprise(engine, uscc, name, role, party_id=party)
            upsert_site(engine, site, uscc, f"{name}{kind}", kind=kind, lat=lat, lon=lon)
            self.usccs[tag], self.parties[tag], self.sites[tag] = uscc, party, site
        mfr = self.usccs["MFR"]
        upsert_product(
            engine,
            "8600001",
            "阿莫西林胶囊",
            trade_name="示例林",
            dosage_form="胶囊剂",
            strength="0.25g",
            pack_spec="0.25g×24粒/盒",
            units_per_pack=24,
            approval_no="国药准字H00000001",
            holder_uscc=mfr,
            manufacturer_uscc=mfr,
        )
        upsert_product(
            engine,
            "8600002",
            "阿莫西林胶囊",
            packaging_level=2,
            units_per_pack=60,
            pack_spec="60盒/箱",
            holder_uscc=mfr,
            manufacturer_uscc=mfr,
        )
        upsert_product(
            engine,
            "8600004",
            "人胰岛素注射液",
            dosage_form="注射剂",
            units_per_pack=1,
            temp_min=2.0,
            temp_max=8.0,
            holder_uscc=mfr,
            manufacturer_uscc=mfr,
        )

    @staticmethod
    def pack(n: int, product: str = "8600001") -> str:
        """URI of pack ``n`` of a product (NMPA rule-a code: 药品标识码 + 13-digit serial)."""
        from yaolian.codes.nmpa import nmpa_code_uri

        return nmpa_code_uri(f"{product}{n:013d}")

    @staticmethod
    def case(n: int) -> str:
        """URI of case ``n`` (level-2 NMPA code)."""
        from yaolian.codes.nmpa import nmpa_code_uri

        return nmpa_code_uri(f"8600002{n:013d}")

    @staticmethod
    def pallet(n: int) -> str:
        """URI of pallet ``n`` (SSCC)."""
        from yaolian.codes.epc import sscc_uri
        from yaolian.codes.gs1 import with_check_digit

        return sscc_uri(with_check_digit(f"0690123400{n:07d}"))

    def at(self, hours: float) -> datetime:
        """``T0`` plus hours."""
        return self.T0 + timedelta(hours=hours)

    # Event builders: actors are tags ("MFR", "DIST", "PHA", "PHB"); ``codes`` is one URI or a
    # list; extra keywords go to ``object_event`` unchanged.
    def commission(
        self,
        codes: Codes,
        hours: float,
        *,
        lot: str | None = None,
        expiry: str | None = None,
        produced: str | None = None,
        site: str = "MFR",
    ) -> Event:
        """Commissioning (赋码) of codes at a site, with their batch facts."""
        return self._object(
            codes,
            hours,
            "commissioning",
            "active",
            action="ADD",
            site=self.sites[site],
            lot=lot,
            expiry=expiry,
            produced=produced,
        )

    def ship(
        self,
        codes: Codes,
        hours: float,
        src: str,
        dst: str,
        *,
        disposition: str = "in_transit",
        **fields: Any,
    ) -> Event:
        """Shipping (发货) from party ``src`` to party ``dst``; ``disposition="returned"`` for
        a return (退货)."""
        return self._object(
            codes,
            hours,
            "shipping",
            disposition,
            source=self.parties[src],
            destination=self.parties[dst],
            **fields,
        )

    def receive(
        self,
        codes: Codes,
        hours: float,
        at_site: str,
        *,
        src: str | None = None,
        disposition: str = "active",
        **fields: Any,
    ) -> Event:
        """Receiving (收货) at ``at_site``'s site by its party; ``src`` names the sender."""
        return self._object(
            codes,
            hours,
            "receiving",
            disposition,
            site=self.sites[at_site],
            source=self.parties[src] if src else None,
            destination=self.parties[at_site],
            **fields,
        )

    def destroy(self, codes: Codes, hours: float, site: str) -> Event:
        """Destruction (销毁) at a site."""
        return self._object(codes, hours, "destroying", "destroyed", site=self.sites[site])

    def pack_into(self, parent: str, children: list[str], hours: float, site: str = "MFR") -> Event:
        """Packing children into a parent (装箱/组托) at a site."""
        from yaolian.trace.builders import aggregation_event

        return aggregation_event(parent, children, self.at(hours), site=self.sites[site])

    def unpack(
        self, parent: str, hours: float, site: str, children: list[str] | None = None
    ) -> Event:
        """Unpacking (拆箱/拆托) at a site: the children named, or everything."""
        from yaolian.trace.builders import aggregation_event

        return aggregation_event(
            parent, children or [], self.at(hours), action="DELETE", site=self.sites[site]
        )

    def _object(self, codes: Codes, hours: float, *args: Any, **fields: Any) -> Event:
        from yaolian.trace.builders import object_event

        epcs = [codes] if isinstance(codes, str) else codes
        return object_event(epcs, self.at(hours), *args, **fields)

    def capture(self, *events: dict[str, Any]) -> Any:
        """Capture events (one document) and return the result; fails the test if rejected."""
        from yaolian.store.ingest import capture_document
        from yaolian.trace.builders import document

        result = capture_document(self.engine, document(list(events)))
        assert result.success, result.errors
        return result

    def code_id(self, uri: str) -> int:
        """Interned id of a code."""
        from yaolian.codes.identity import canonical_key
        from yaolian.store.dictionary import lookup_codes

        with self.engine.connect() as conn:
            return lookup_codes(conn, [canonical_key(uri)])[canonical_key(uri)]

    def state(self, uri: str) -> Any:
        """The ``code_state`` row of a code."""
        from sqlalchemy import select

        from yaolian.store.schema import code_state

        with self.engine.connect() as conn:
            return conn.execute(
                select(code_state).where(code_state.c.code_id == self.code_id(uri))
            ).first()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every trace projection row (alert ids left out), sorted: for rebuild equality."""
        from sqlalchemy import select

        from yaolian.trace.projection import _TABLES

        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in _TABLES:
                cols = [c for c in table.c if c.name != "id"]
                rows = conn.execute(select(*cols)).all()
                out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
        return out


@pytest.fixture
def trace_world(engine: Engine) -> TraceWorld:
    """A :class:`TraceWorld` on the empty store (SQLite and PostgreSQL)."""
    return TraceWorld(engine)


# ── the demo world: a realistic store for the web pages' tests ─────────────────────────────
@dataclass(frozen=True)
class DemoStore:
    """The tiny demo world on SQLite: its URL, ground truth and a regulator key."""

    url: str
    truth: dict[str, Any]
    regulator_key: str

    def incident_code(self, kind: str, prefix: str = "") -> str:
        """The raw code of the first incident of ``kind`` whose code starts with ``prefix``."""
        return next(
            code
            for incident in self.truth["incidents"]
            if incident["type"] == kind
            for code in incident["raw_codes"]
            if code.startswith(prefix)
        )


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    """``yaolian demo --size tiny`` run once per session (or xdist worker): simulated, captured,
    with alerts, a recall and shortage warnings. Tests read it and must not change it."""
    import orjson

    from cli_run import run

    folder = tmp_path_factory.mktemp("demo")
    code, out = run("demo", "--dir", str(folder), "--size", "tiny", "--seed", "3", "--no-codes")
    assert code == 0, out
    url = f"sqlite:///{folder / 'yaolian-demo.db'}"
    key = access.create_key(open_engine(url), None, "regulator", label="web tests")
    truth = orjson.loads((folder / "ground_truth.json").read_bytes())
    return DemoStore(url, truth, key)
