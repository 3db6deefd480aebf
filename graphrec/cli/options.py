"""How the commands read their options, one way everywhere: list options take values
separated by spaces or commas (``--k 1 10 100`` = ``--k 1,10,100``), and the main input may be
given positionally or as an option (:func:`one_of`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from typer.core import TyperCommand

__all__ = ["hoist", "join_list_values", "list_options", "one_of", "split_list"]


def one_of(first, second, names: str):
    """The value given by either of two spellings of one input (``names``, e.g. "RUN_DIR and
    --run"); both giving different values is a one-line UsageError. Paths naming the same
    file (``graph`` and ``./graph/``) are the same value."""
    from graphrec.errors import UsageError

    if first is None or second is None:
        return first if first is not None else second
    same = first == second or (isinstance(first, Path) and isinstance(second, Path) and first.absolute() == second.absolute())
    if not same:
        raise UsageError(f"{names} name different values ({first} and {second}); give it once.")
    return first


def split_list(text: str | None) -> list[str]:
    """``"a, b c"`` -> ``["a", "b", "c"]``: list values are separated by commas or spaces."""
    return text.replace(",", " ").split() if text else []


def _is_numbers(token: str) -> bool:
    parts = split_list(token)
    try:
        [float(part) for part in parts]
    except ValueError:
        return False
    return bool(parts)


def _is_name(token: str) -> bool:
    """A relation or decoder name, not an option and not a path (the positional GRAPH_DIR
    that may follow the list)."""
    return bool(token) and not token.startswith("-") and "/" not in token and os.sep not in token and not os.path.exists(token)


def join_list_values(args: Sequence[str], numbers: Sequence[str] = (), names: Sequence[str] = ()) -> list[str]:
    """``args`` with the values that follow a list option joined into one comma-separated
    value: ``["--k", "1", "10", "G"]`` -> ``["--k", "1,10", "G"]``. An option of ``numbers``
    takes the numbers that follow it, one of ``names`` the words that are not options or
    existing paths; ``--`` ends the options."""
    out, i = [], 0
    while i < len(args):
        token = args[i]
        i += 1
        flag = token.split("=", 1)[0]
        if token == "--" or flag not in (*numbers, *names):
            out.append(token)
            if token == "--":
                out.extend(args[i:])
                break
            continue
        if token == flag:  # the first value is the next word, whatever it is (click's own rule)
            if i == len(args):
                out.append(token)
                continue
            values, i = [args[i]], i + 1
        else:
            values = [token.split("=", 1)[1]]
        accept = _is_numbers if flag in numbers else _is_name
        while i < len(args) and accept(args[i]):
            values.append(args[i])
            i += 1
        out.extend([flag, ",".join(values)])
    return out


def hoist(args: Sequence[str], flags: Sequence[str]) -> list[str]:
    """``args`` with every word of ``flags`` (before a ``--``) moved to the front, so that the
    app's own options (``--debug``, ``--version``) work after the command as well as before it."""
    end = list(args).index("--") if "--" in args else len(args)
    front = [word for word in args[:end] if word in flags]
    return [*front, *(word for word in args[:end] if word not in flags), *args[end:]]


def list_options(numbers: Sequence[str] = (), names: Sequence[str] = ()) -> type[TyperCommand]:
    """A command class (``@app.command(cls=...)``) whose options ``numbers`` and ``names``
    (every spelling, e.g. ``"--decoder", "-d"``) take several values, space- or comma-separated."""

    class ListOptionsCommand(TyperCommand):
        def parse_args(self, ctx, args: list[str]) -> list[str]:
            return super().parse_args(ctx, join_list_values(args, numbers, names))

    return ListOptionsCommand
