"""``python -m graphrec.cli`` (torchrun starts commands this way)."""

from graphrec.cli import app

app()
