"""``graphrec serve``: recommendations as an HTTP API and as pages people can browse.

>>> from graphrec.serve import create_app
>>> app = create_app("graphrec-sample/runs/mahalanobis-k10")   # any ASGI server runs it

``serve(run_dir, host, port)`` does the same and runs it with uvicorn. Modules:
:mod:`~graphrec.serve.catalogue` (the run and the look-ups, loaded once),
:mod:`~graphrec.serve.search` (ASIN and word-prefix search), :mod:`~graphrec.serve.api`
(JSON routes), :mod:`~graphrec.serve.pages` and :mod:`~graphrec.serve.html` (the
browsing pages), :mod:`~graphrec.serve.app` (the app, error handling, the server).
"""

from graphrec.serve.app import create_app, serve
from graphrec.serve.catalogue import MAX_K, MAX_UPLOAD_BYTES, Catalogue, ServeError

__all__ = ["MAX_K", "MAX_UPLOAD_BYTES", "Catalogue", "ServeError", "create_app", "serve"]
