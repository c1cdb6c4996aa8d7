"""``yaolian sim | demo | eval`` end to end through typer's CliRunner at the tiny size."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from cli_run import run, run_main
from yaolian.sim.evaluate import parse_seeds


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    code, out = run("demo", "--dir", str(tmp_path), "--size", "tiny", "--seed", "3", "--no-codes")
    assert code == 0, out
    for title in (
        "the world",
        "what was captured",
        "backward trace",
        "verify",
        "anomaly alerts",
        "recall scope",
        "shortages",
        "go on from here",
    ):
        assert title in out
    assert "genuine" in out and "unknown" in out  # a genuine and a counterfeit code
    assert "追溯覆盖率" in out and "traced end to end" in out
    assert "shortage warning" in out and "ground truth: regional shortages" in out
    assert "yaolian serve --db" in out
    truth = orjson.loads((tmp_path / "ground_truth.json").read_bytes())
    assert truth["seed"] == 3 and truth["incidents"]
    assert (tmp_path / "yaolian-demo.db").exists()


def test_sim_writes_jsonld_and_truth(tmp_path: Path) -> None:
    code, out = run(
        "sim", "--size", "tiny", "--seed", "2", "--out", str(tmp_path), "--chunk", "2000"
    )
    assert code == 0, out
    files = sorted(tmp_path.glob("events-*.jsonld"))
    assert len(files) >= 2
    doc = orjson.loads(files[0].read_bytes())
    assert doc["type"] == "EPCISDocument" and len(doc["epcisBody"]["eventList"]) == 2000
    truth = orjson.loads((tmp_path / "ground_truth.json").read_bytes())
    master = orjson.loads((tmp_path / "masterdata.json").read_bytes())
    assert truth["size"] == "tiny" and master["products"]


def test_sim_writes_nmpa_csv(tmp_path: Path) -> None:
    code, out = run("sim", "--size", "tiny", "--out", str(tmp_path), "--format", "nmpa-csv")
    assert code == 0, out
    first = next(tmp_path.glob("nmpa-*.csv")).read_text("utf-8").splitlines()[0]
    assert first.startswith("单据号,业务类型,业务时间")


def test_sim_into_store(tmp_path: Path) -> None:
    db = tmp_path / "sim.db"
    code, out = run("sim", "--size", "tiny", "--format", "store", "--db", str(db))
    assert code == 0, out
    code, out = run(
        "events", "--db", str(db), "--biz-step", "receiving", "--limit", "3", "--format", "jsonld"
    )
    assert code == 0, out
    events = orjson.loads(out)["epcisBody"]["eventList"]
    assert len(events) == 3 and {e["bizStep"] for e in events} == {"receiving"}


def test_eval_reports_metrics(tmp_path: Path) -> None:
    out_file = tmp_path / "eval.json"
    code, out = run("eval", "--seeds", "4", "--size", "tiny", "--out", str(out_file))
    assert code == 0, out
    assert "yaolian eval" in out and "metrics written to" in out
    report = orjson.loads(out_file.read_bytes())
    assert report["seeds"] == [4] and len(report["runs"]) == 1
    pooled = {row["type"]: row for row in report["pooled"]}
    for kind in ("counterfeit", "clone", "resale", "diversion", "cold_chain_excursion"):
        row = pooled[kind]
        assert row["incidents"] > 0
        assert 0.0 <= row["recall"] <= 1.0
        assert row["precision"] is None or 0.0 <= row["precision"] <= 1.0
    assert pooled["counterfeit"]["recall"] == 1.0


def test_bad_options_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = run_main(monkeypatch, capsys, "sim", "--size", "huge", "--out", str(tmp_path))
    assert code == 2 and "unknown size 'huge'" in out
    code, out = run_main(monkeypatch, capsys, "sim", "--size", "tiny")
    assert code == 2 and "--out" in out
    code, out = run_main(
        monkeypatch, capsys, "sim", "--size", "tiny", "--format", "xml", "--out", str(tmp_path)
    )
    assert code == 2 and "unknown format 'xml'" in out
    code, out = run_main(monkeypatch, capsys, "eval", "--seeds", "a,b")
    assert code == 2 and "--seeds" in out


def test_parse_seeds() -> None:
    assert parse_seeds("1,2,3") == [1, 2, 3]
    assert parse_seeds("2-4") == [2, 3, 4]
