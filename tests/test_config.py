"""Where the store is: ``--db`` and ``$YAOLIAN_DATABASE_URL`` take a URL or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

import pytest

from yaolian.api.app import ApiSettings
from yaolian.config import database_url, env_number
from yaolian.errors import ValidationError


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


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("YAOLIAN_CAPTURE_LIMIT", "lots"),
        ("YAOLIAN_CAPTURE_LIMIT", "0"),
        ("YAOLIAN_CAPTURE_SIZE_LIMIT", "1.5e9"),  # bytes are whole
        ("YAOLIAN_CLONE_SPEED_KMH", "fast"),
        ("YAOLIAN_CLONE_SPEED_KMH", "nan"),
        ("YAOLIAN_REBUILD_WORKERS", "２"),  # a full-width digit
        ("YAOLIAN_REBUILD_WORKERS", "-1"),
    ],
)
def test_a_bad_numeric_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    default: int | float = 300.0 if name == "YAOLIAN_CLONE_SPEED_KMH" else 10
    monkeypatch.setenv(name, text)
    with pytest.raises(ValidationError) as caught:
        env_number(name, default, type(default)(1 if name != "YAOLIAN_REBUILD_WORKERS" else 0))
    assert caught.value.place == name and repr(text) in str(caught.value)


def test_numeric_settings_read_by_the_server_and_the_projector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("YAOLIAN_CAPTURE_LIMIT", " 1000 ")
    monkeypatch.setenv("YAOLIAN_CLONE_SPEED_KMH", "120.5")
    assert ApiSettings.from_env().capture_limit == 1000
    assert env_number("YAOLIAN_CLONE_SPEED_KMH", 300.0, 1.0) == 120.5
    monkeypatch.setenv("YAOLIAN_CAPTURE_SIZE_LIMIT", "big")
    with pytest.raises(ValidationError) as caught:
        ApiSettings.from_env()
    assert caught.value.place == "YAOLIAN_CAPTURE_SIZE_LIMIT"
    monkeypatch.delenv("YAOLIAN_CLONE_SPEED_KMH")
    assert env_number("YAOLIAN_CLONE_SPEED_KMH", 300.0, 1.0) == 300.0
