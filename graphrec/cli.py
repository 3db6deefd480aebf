"""The ``graphrec`` command line: a thin layer that parses options, calls one library
function per command and prints its result. No logic lives here.

Every command runs through :func:`_run`, which turns a :class:`GraphrecError` into one
clear sentence on stderr and a non-zero exit code (a traceback only with ``--debug``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console

from graphrec.errors import GraphrecError

app = typer.Typer(
    name="graphrec",
    help="Graph-based fashion recommendation from Amazon co-purchase lists and product images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR.parent / "data"


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors.")) -> None:
    """graphrec: build a product graph, learn a style space, recommend what goes together."""
    _state["debug"] = debug


def _run(func: Callable) -> Callable:
    """Decorator for commands: user errors become one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GraphrecError as error:
            if _state["debug"]:
                raise
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; finished work is kept and the same command resumes or restarts cleanly")
            raise typer.Exit(130) from None

    return wrapper


# --- build-graph, info (io -> graph) -------------------------------------------------


# --- extract-features (images -> features) -------------------------------------------


# --- train, evaluate, sweep (graph -> models -> runs) ---------------------------------


# --- neighbours (runs -> recommendations) ---------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    app()
