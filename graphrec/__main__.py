"""``python -m graphrec``: the same command line as the ``graphrec`` console script."""

from graphrec.cli import app

app(prog_name="graphrec")
