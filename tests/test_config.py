"""Where the store is: ``--db`` and ``$YAOLIAN_DATABASE_URL`` take a URL or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

import pytest

from yaolian.config import database_url


def test_db_option_url_is_kept_and_path_becomes_sqlite(tmp_path: Path) -> None:
    assert database_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert database_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"


def test_environment_takes_a_path_or_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YAOLIAN_DATABASE_URL", "demo/yaolian.db")
    assert database_url(None) == f"sqlite:///{tmp_path / 'demo' / 'yaolian.db'}"
    monkeypatch.setenv("YAOLIAN_DATABASE_URL", "sqlite:///x.db")
    assert database_url(None) == "sqlite:///x.db"


def test_default_is_the_per_user_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("YAOLIAN_DATABASE_URL", raising=False)
    monkeypatch.setenv("YAOLIAN_HOME", str(tmp_path))
    assert database_url(None) == f"sqlite:///{tmp_path / 'yaolian.db'}"
