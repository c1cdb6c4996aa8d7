"""Issuing codes on a real store (SQLite and PostgreSQL): unique forever, random, idempotent."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date

import pytest
import sqlalchemy as sa

from yaolian.codes.issue import (
    IssueRequest,
    export_csv,
    export_text,
    issue_codes,
    load_request,
)
from yaolian.codes.registry import CodeRegistry
from yaolian.errors import CodeError
from yaolian.store import schema

REG = CodeRegistry.bundled()


def test_issue_nmpa_codes(engine: sa.Engine) -> None:
    result = issue_codes(engine, REG, IssueRequest("r1", "8600001", 200, "B1", date(2028, 1, 31)))
    codes = [c.code for c in result.codes]
    assert len(set(codes)) == 200
    assert [c.seq for c in result.codes] == list(range(1, 201))
    for c in result.codes:
        valid = REG.validate(c.code)  # every issued code is valid under its rule
        assert valid.trace.product_code == "8600001" and valid.trace.serial == c.serial
    # not sequential: serials are spread over the whole 13-digit space
    serials = sorted(int(c.serial) for c in result.codes)
    assert serials[-1] - serials[0] > 10**12
    assert min(b - a for a, b in itertools.pairwise(serials)) > 1  # no runs of neighbours


def test_idempotent_per_request_id(engine: sa.Engine) -> None:
    request = IssueRequest("po-7", "8600002", 30, "B2", date(2028, 6, 30))
    first = issue_codes(engine, REG, request)
    again = issue_codes(engine, REG, request)
    assert again.reused and not first.reused
    assert [c.code for c in again.codes] == [c.code for c in first.codes]
    assert [c.code for c in load_request(engine, REG, "po-7").codes] == [
        c.code for c in first.codes
    ]
    with pytest.raises(CodeError, match="already used"):
        issue_codes(engine, REG, IssueRequest("po-7", "8600002", 31, "B2", date(2028, 6, 30)))
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(schema.issued_code)).scalar() == 30
        )


def test_unique_forever_across_requests(engine: sa.Engine) -> None:
    seen: set[str] = set()
    for n in range(5):
        result = issue_codes(engine, REG, IssueRequest(f"batch-{n}", "8600003", 100))
        codes = {c.code for c in result.codes}
        assert not codes & seen
        seen |= codes
    with engine.connect() as conn:
        stored = conn.execute(sa.select(schema.issued_code.c.code)).scalars().all()
    assert len(stored) == len(set(stored)) == 500


def test_gs1_codes_and_exports(engine: sa.Engine) -> None:
    result = issue_codes(
        engine, REG, IssueRequest("gs1-1", "06901234567892", 3, "L9", date(2028, 10, 31))
    )
    assert result.rule == "GS1"
    lines = list(csv.DictReader(io.StringIO(export_csv(result))))
    assert [line["seq"] for line in lines] == ["1", "2", "3"]
    for line, issued in zip(lines, result.codes, strict=True):
        assert line["barcode_data"] == f"(01)06901234567892(17)281031(10)L9(21){issued.serial}"
        assert line["uri"].startswith("https://id.gs1.org/01/06901234567892/10/L9/21/")
        assert REG.validate(line["barcode_data"]).trace.serial == issued.serial
        assert len(issued.serial) == 12
    assert export_text(result).splitlines() == [c.code for c in result.codes]


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (IssueRequest("x", "8600099", 1), "unknown 药品标识码 8600099"),
        (IssueRequest("x", "8600001", 0), "quantity must be"),
        (IssueRequest("", "8600001", 1), "request id must have"),
        (IssueRequest("x", "8600001", 1, lot="L#1"), "character '#' not allowed"),
    ],
)
def test_bad_requests(sqlite_engine: sa.Engine, request_: IssueRequest, reason: str) -> None:
    with pytest.raises(CodeError, match=reason):
        issue_codes(sqlite_engine, REG, request_)
    with sqlite_engine.connect() as conn:  # nothing half-written
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(schema.code_issue_request)).scalar()
            == 0
        )


def test_issued_at_finds_a_code_in_any_of_its_forms(engine: sa.Engine) -> None:
    from yaolian.codes.identity import canonical_key
    from yaolian.codes.issue import issued_at

    gs1 = issue_codes(engine, REG, IssueRequest("g-1", "06901234567892", 1, "L1"))
    nmpa = issue_codes(engine, REG, IssueRequest("n-1", "8600001", 1))
    line = gs1.print_lines()[0]
    with engine.connect() as conn:
        for form in (line["code"], line["uri"], line["barcode_data"], nmpa.codes[0].code):
            assert issued_at(conn, canonical_key(form)) is not None, form
        assert issued_at(conn, canonical_key("86000010000000000001")) is None  # never issued
        assert issued_at(conn, canonical_key("urn:epc:id:sscc:6901234.0000000001")) is None
