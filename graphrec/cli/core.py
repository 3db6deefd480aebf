"""The ``graphrec`` command line: a thin layer that parses options, calls one library
function per command and prints its result. No logic lives here.

Every command runs through :func:`one_line_errors`, which turns a :class:`GraphrecError` into one
clear sentence on stderr and a non-zero exit code (a traceback only with ``--debug``).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import Callable

import typer
from rich.console import Console
from typer.core import TyperGroup

from graphrec.cli.options import hoist
from graphrec.device import use_threads
from graphrec.errors import GraphrecError, GraphrecWarning
from graphrec.fs import os_error_message

GLOBAL_FLAGS = ("--debug", "--version")  # the app's own options, accepted anywhere on the line


class _App(TyperGroup):
    """The ``graphrec`` group: :data:`GLOBAL_FLAGS` written after the command are moved before it."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist(args, GLOBAL_FLAGS))


app = typer.Typer(
    name="graphrec",
    cls=_App,
    help="Graph-based fashion recommendation from Amazon co-purchase lists and product images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual width; a pipe, a log file or CI (no terminal, no COLUMNS)
    gets one wide enough that no table cell, path or epoch line is ever cut or wrapped."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=LOG_WIDTH)


LOG_WIDTH = 10_000  # characters of a line when not on a terminal: in practice unlimited
console = _console()
err_console = _console(stderr=True)
_state = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from graphrec import __version__

        typer.echo(f"graphrec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors (before or after the command)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print 'graphrec <version>' and exit."),
) -> None:
    """graphrec: build a product graph, learn a style space, recommend what goes together."""
    _state["debug"] = debug


_MOST = 2**31 - 1  # sizes and counts beyond this overflow the tensors they size
# The range of every numeric option, by parameter name, for every command (train, evaluate
# and sweep read the same line): (lowest, highest, lowest excluded, highest excluded).
# Values must also be finite. The library repeats its own checks (TrainConfig) for Python users.
LIMITS: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0, math.inf, True, True), "noise_floor": (0, 0.5, False, True), "aux_weight": (0, math.inf, True, True),
    "shrink": (0, math.inf, False, True), "weight_decay": (0, math.inf, False, True),
    "k": (1, 65536, False, False), "epochs": (1, _MOST, False, False), "batch_size": (1, _MOST, False, False),
    "patience": (0, _MOST, False, False), "negatives": (1, 1000, False, False), "layers": (1, 64, False, False),
    "candidates": (1, 100_000, False, False), "top": (1, 100_000, False, False), "workers": (0, 256, False, False),
    "feature_dim": (1, 1 << 20, False, False), "seed": (0, 2**32 - 1, False, False), "threads": (1, 1024, False, False),
}


THREADS_HELP = ("CPU threads for torch and faiss (default: the cores not kept busy by other work now, "
                "counted from the runnable tasks; at least 1).")


def threads_option():
    """The ``--threads N`` option of every command that computes (see :mod:`graphrec.device`)."""
    return typer.Option(None, "--threads", help=THREADS_HELP, show_default=False)


def _limit_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """"at least 1 and at most 64" (integers), "a finite number above 0"."""
    if isinstance(high, int):
        return f"at least {low} and at most {high}"
    lower = f"a finite number {'above' if low_open else 'at least'} {low:g}"
    return lower if math.isinf(high) else f"{lower} and {'below' if high_open else 'at most'} {high:g}"


def check_limits(values: dict, flags: dict[str, str] | None = None) -> None:
    """A :class:`UsageError` (exit 2) naming the first option of ``values`` (parameter name
    -> number, or a list of numbers) that is not finite or outside its :data:`LIMITS`.
    ``flags`` maps names to the option as typed (default: read from the running command)."""
    from graphrec.errors import UsageError

    for name, value in values.items():
        if name not in LIMITS or value is None:
            continue
        for number in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                continue
            low, high, low_open, high_open = LIMITS[name]
            inside = math.isfinite(number) and (number > low if low_open else number >= low) and (number < high if high_open else number <= high)
            if not inside:
                flag = (flags or _flags()).get(name, "--" + name.replace("_", "-"))
                raise UsageError(f"{flag} must be {_limit_text(*LIMITS[name])} (got {number}).")


def _flags() -> dict[str, str]:
    """Parameter name -> its longest option name (``top`` -> ``--top``) in the running command."""
    import click

    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx is not None else []
    return {param.name: max(param.opts, key=len) for param in params if param.opts}


def _print_warning(others: Callable, message, category, *details) -> None:
    """``warnings.showwarning`` of the commands: a :class:`GraphrecWarning` is one
    ``warning:`` line on stderr; other warnings go to ``others`` (Python's own display)."""
    if not issubclass(category, GraphrecWarning):
        return others(message, category, *details)
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def one_line_errors(func: Callable) -> Callable:
    """Decorator for commands: user errors become one line on stderr and a non-zero exit.
    So does an operating-system error on a path (an output folder that cannot be written,
    a parent that is a file, ``--picture`` naming a directory): the sentence names the path
    and what to do (:func:`graphrec.fs.os_error_message`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():  # graphrec's warnings (e.g. train's ScalingWarning): one line each, as they happen
                warnings.simplefilter("always", GraphrecWarning)
                warnings.showwarning = functools.partial(_print_warning, warnings.showwarning)
                check_limits(kwargs)
                use_threads(kwargs.get("threads"))
                return func(*args, **kwargs)
        except (GraphrecError, OSError) as error:
            if _state["debug"]:
                raise
            message = os_error_message(error) if isinstance(error, OSError) else error
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 1)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; finished work is kept and the same command resumes or restarts cleanly")
            raise typer.Exit(130) from None

    return wrapper


