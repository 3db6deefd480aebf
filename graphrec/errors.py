"""User-facing errors.

Every problem a user can fix (a missing file, a malformed line with ``--strict``,
an unknown ASIN, a K larger than the feature dimension...) is raised as a
:class:`GraphrecError` whose message is one sentence naming the file, line or
ASIN and what to do. The CLI prints that sentence and exits non-zero; only
``--debug`` shows a traceback. Anything else escaping is a bug in graphrec.
"""

from __future__ import annotations

__all__ = ["GraphrecError", "DataError", "UsageError", "GraphrecWarning", "choose", "closest"]

import difflib
from typing import Iterable


class GraphrecError(Exception):
    """A problem with the user's input or environment, explained in one sentence."""

    exit_code = 1


class DataError(GraphrecError, ValueError):
    """A data file is malformed (names the file and the line, byte offset or ASIN)."""


class UsageError(GraphrecError):
    """Options that cannot work together, or that ask for something that is not there."""

    exit_code = 2


class GraphrecWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it
    as one ``warning:`` line)."""


def closest(value: str, choices: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``value`` (difflib's ratio, case ignored), best first."""
    lowered: dict[str, str] = {}
    for choice in choices:
        lowered.setdefault(str(choice).lower(), choice)
    return [lowered[c] for c in difflib.get_close_matches(str(value).lower(), list(lowered), n=n, cutoff=cutoff)]


def choose(value: str, choices: Iterable[str], what: str) -> str:
    """``value`` as the one of ``choices`` it names, case ignored (``"LightGCN"`` ->
    ``"lightgcn"``); otherwise a one-line :class:`UsageError` naming ``what`` (e.g.
    ``"decoder"`` or ``"--dtype"``), the closest choice and all of them."""
    choices = list(choices)
    if value in choices:
        return value
    matches = [choice for choice in choices if choice.lower() == str(value).lower()]
    if len(matches) == 1:
        return matches[0]
    near = closest(value, choices)
    hint = f" (did you mean {near[0]}?)" if near else ""
    raise UsageError(f"unknown {what} {value!r}{hint}; choose one of {', '.join(choices)}.")
