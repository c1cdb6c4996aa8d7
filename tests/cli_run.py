"""Running the real ``yaolian`` CLI in tests: through typer's CliRunner, or the entry point."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from yaolian.cli import app, main

runner = CliRunner()


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    """Exit code and output of ``yaolian ARGS``; an exception other than exit fails the test."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Through the console entry point, which turns expected errors into exit 2."""
    monkeypatch.setattr(sys, "argv", ["yaolian", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out + captured.err
