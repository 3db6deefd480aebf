"""User-facing errors.

Every problem a user can fix (a missing file, a malformed line with ``--strict``,
an unknown ASIN, a K larger than the feature dimension...) is raised as a
:class:`GraphrecError` whose message is one sentence naming the file, line or
ASIN and what to do. The CLI prints that sentence and exits non-zero; only
``--debug`` shows a traceback. Anything else escaping is a bug in graphrec.
"""

from __future__ import annotations

__all__ = ["GraphrecError", "DataError", "UsageError", "GraphrecWarning"]


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
