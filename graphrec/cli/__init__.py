"""The ``graphrec`` command line: a thin layer that parses options, calls one library
function per command and prints its result. No logic lives here.

``core`` holds the typer app, the error wrapper and the numeric option limits; the commands
live in ``data`` (build-graph, info, extract-features), ``learn`` (train, evaluate, sweep) and
``recommend`` (neighbours, serve); ``output`` prints their results.
"""

from graphrec.cli import data, learn, recommend  # noqa: F401  (importing them registers the commands on app)
from graphrec.cli.core import LIMITS, app, check_limits

__all__ = ["app", "LIMITS", "check_limits"]
