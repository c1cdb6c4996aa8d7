"""``yaolian codes …`` and ``yaolian demo`` through typer's CliRunner on the real app."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import orjson
import pytest

from cli_run import run, run_main
from yaolian.cli.demo import codes_walkthrough


def test_parse_table_and_json() -> None:
    code, out = run("codes", "parse", "86000010000879766660", "urn:epc:id:sgtin:6901234.056789.X1")
    assert code == 0
    assert "阿莫西林胶囊" in out and "nmpa" in out and "epc" in out
    code, out = run("codes", "parse", "(01)06901234567892(17)281031(10)L1(21)X1", "--json")
    assert code == 0
    [info] = orjson.loads(out)
    assert info["ok"] and info["kind"] == "gs1"
    assert info["key"] == "01/06901234567892/21/X1"
    assert info["product"]["generic_name"] == "布洛芬缓释胶囊"


def test_parse_bad_code_exit_1() -> None:
    code, out = run("codes", "parse", "7777", "--json")
    assert code == 1
    [info] = orjson.loads(out)
    assert not info["ok"] and "unknown issuer prefix '7'" in info["reason"]


def test_validate_file_reports_each_bad_line(tmp_path: Path) -> None:
    lines = [
        "86000010000879766660",
        "",
        "8600001000087976666",  # line 3: too short
        "(01)06901234567892(17)281301(21)X1",  # line 4: expiry not a date
        "(01)06901234567893(21)X1",  # line 5: bad check digit
        "86000990000879766660",  # line 6: unknown 药品标识码
        "(01)06901234567892(99999)1",  # line 7: unknown AI
        "96000010000879766660",  # line 8: unknown issuer prefix
        "urn:epc:id:sgtin:6901234.056789.X1",
    ]
    f = tmp_path / "codes.txt"
    f.write_text("\n".join(lines) + "\n", "utf-8")
    code, out = run("codes", "validate", "--file", str(f), "--json")
    assert code == 1
    report = orjson.loads(out)
    assert (report["total"], report["valid"], report["invalid"]) == (8, 2, 6)
    reasons = {p["line"]: p["reason"] for p in report["problems"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "wrong length 19" in reasons[3]
    assert "not a date: month 13" in reasons[4]
    assert "bad check digit 3, expected 2" in reasons[5]
    assert "unknown 药品标识码 8600099" in reasons[6]
    assert "unknown AI (99999)" in reasons[7]
    assert "unknown issuer prefix '9'" in reasons[8]
    code, out = run("codes", "validate", "--file", str(f))
    assert code == 1 and "2 valid, 6 invalid" in out


def test_validate_args_stdin_and_all_good() -> None:
    code, out = run("codes", "validate", "86000010000879766660")
    assert code == 0 and "1 valid, 0 invalid" in out
    code, out = run("codes", "validate", "--file", "-", input="86000010000879766660\nx\n")
    assert code == 1 and "unknown issuer prefix 'x'" in out


def test_validate_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run_main(
        monkeypatch, capsys, "codes", "validate", "--file", str(tmp_path / "none.txt")
    )
    assert code == 2 and "cannot read: No such file" in " ".join(out.split())
    code, out = run_main(monkeypatch, capsys, "codes", "validate", "--file", str(tmp_path))
    assert code == 2 and "cannot read: Is a directory" in " ".join(out.split())
    assert "Traceback" not in out and "internal error" not in out


def test_issue_render_read(tmp_path: Path) -> None:
    db = str(tmp_path / "store.db")
    out = tmp_path / "codes.csv"
    args = [
        "codes",
        "issue",
        "06901234567892",
        "-n",
        "3",
        "--lot",
        "L1",
        "--expiry",
        "2028-10-31",
        "--request-id",
        "t-1",
        "--db",
        db,
        "--out",
        str(out),
    ]
    code, text = run(*args)
    assert code == 0, text
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert len(rows) == 3
    code, again = run(*args[:-2], "--json")
    assert code == 0 and orjson.loads(again)["reused"] is True
    assert [r["code"] for r in orjson.loads(again)["codes"]] == [r["code"] for r in rows]

    png = tmp_path / "pack.png"
    code, _ = run("codes", "render", rows[0]["barcode_data"], "--out", str(png))
    assert code == 0 and png.exists()
    code, read = run("codes", "read", str(png), "--json")
    assert code == 0
    [decoded] = orjson.loads(read)
    assert decoded["gs1"] and decoded["hri"] == rows[0]["barcode_data"]
    code, _ = run(
        "codes", "render", rows[0]["code"], "--kind", "qr", "--out", str(tmp_path / "q.svg")
    )
    assert code == 0 and (tmp_path / "q.svg").read_text().lstrip().startswith("<?xml")


def test_issue_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "store.db")
    code, out = run_main(
        monkeypatch, capsys, "codes", "issue", "8600001", "--expiry", "2028-13-01", "--db", db
    )
    assert code == 2 and "not a date" in out
    code, out = run_main(monkeypatch, capsys, "codes", "issue", "1234567", "--db", db)
    assert code == 2 and "unknown 药品标识码 1234567" in out
    issue = ("codes", "issue", "8600001", "-n", "2", "--db", db)
    code, out = run_main(monkeypatch, capsys, *issue, "-o", str(tmp_path / "codes.pdf"))
    assert code == 2 and "must end in .csv or .txt" in out
    assert (
        not sqlite3.connect(tmp_path / "store.db")
        .execute("SELECT count(*) FROM issued_code")
        .fetchone()[0]
    )  # refused before any code was issued
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, out = run_main(monkeypatch, capsys, *issue, "-o", str(not_a_folder / "c.csv"))
    said = " ".join(out.split())
    assert code == 2 and "cannot write" in said and "--request-id cli-" in said
    request_id = said.split("--request-id ")[1].split()[0]
    code, out = run_main(monkeypatch, capsys, *issue, "--request-id", request_id, "--json")
    assert code == 0 and orjson.loads(out)["reused"] is True  # the issued codes, again


def test_paths_that_cannot_be_used_are_errors_not_bugs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    out_file = str(not_a_folder / "x.json")
    db = str(tmp_path / "s.db")
    assert run_main(monkeypatch, capsys, "db", "init", "--db", db)[0] == 0
    for args in (
        ("masterdata", "export", "--out", out_file, "--db", db),
        ("sim", "--size", "tiny", "--out", str(not_a_folder / "sim")),
    ):
        code, out = run_main(monkeypatch, capsys, *args)
        said = " ".join(out.split())
        assert code == 2 and "Not a directory" in said and "internal error" not in said, args


def test_codes_walkthrough(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The codes part of ``yaolian demo``: issue, render, read back, validate, one identity."""
    codes_walkthrough(tmp_path)
    out = capsys.readouterr().out
    assert out.count("✓") == 3 and "✗" not in out  # three symbols rendered and read back
    assert "issuer prefix '9'" in out and "check digit 3, expected 2" in out
    assert out.count("01/06901234567892/21/") >= 4  # one pack, four names, one key
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "nmpa-datamatrix.png",
        "gs1-datamatrix.png",
        "digital-link-qr.png",
    }
