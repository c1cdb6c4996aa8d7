"""The ``yaolian`` command: one typer app; each module below registers its own commands.

Interfaces only — commands parse options, call the layers and print (tables by default,
``--json`` for machines). Expected failures (:class:`yaolian.errors.YaolianError`) print their
place and reason and exit 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from yaolian.cli import capture, codes, demo, masterdata, supply, trace
from yaolian.cli.common import console_err
from yaolian.errors import YaolianError

app = typer.Typer(
    name="yaolian",
    help="药链 yaolian — drug trace codes, EPCIS events, trace, verification and supply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for module in (codes, capture, masterdata, trace, supply, demo):
    module.register(app)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except YaolianError as exc:
        console_err.print(f"[bold red]error[/]: {exc}")
        for problem in exc.problems[:50]:
            console_err.print(f"  - {problem}")
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("YAOLIAN_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.filename is not None:  # a path that cannot be used
            console_err.print(f"[bold red]error[/]: {exc.filename}: {exc.strerror}")
            sys.exit(2)
        console_err.print(  # a bug, not bad input: say so plainly, trace only on request
            f"[bold red]internal error[/]: {type(exc).__name__}: {exc}\n"
            "This is a bug in yaolian; run again with YAOLIAN_DEBUG=1 for the traceback."
        )
        sys.exit(3)
