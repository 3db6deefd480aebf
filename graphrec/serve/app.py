"""The ASGI application and the server behind ``graphrec serve``.

:func:`create_app` loads the run once (a :class:`~graphrec.serve.catalogue.Catalogue`)
and returns a FastAPI app with the JSON API (:mod:`graphrec.serve.api`), the pages
(:mod:`graphrec.serve.pages`), graphrec's own static files and the OpenAPI page at
``/docs`` (Swagger UI served from a package, not a CDN).

Every failure is answered and the server goes on: a refusal is ``{"detail": sentence}``
with its 4xx status for the API and a friendly page for the browser pages; request
bodies past 20 MB are cut off while they stream in (413); anything unexpected is logged
and answered 500.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from graphrec.errors import UsageError
from graphrec.serve import api, html, pages
from graphrec.serve.catalogue import DEFAULT_CACHE, MAX_UPLOAD_BYTES, Catalogue, ServeError

__all__ = ["UPLOAD_PATHS", "bind", "create_app", "serve"]

STATIC = Path(__file__).resolve().parent / "static"
UPLOAD_PATHS = ("/api/neighbours/image", "/photo")
BODY_SLACK = 64 * 1024  # multipart boundaries and headers around the photo
BACKLOG = 2048
JSON_PREFIXES = ("/api/", "/images/", "/healthz", "/openapi.json", "/docs", "/static/")


def create_app(source: Catalogue | str | os.PathLike, approx: bool | str = "auto", graph: str | os.PathLike | None = None,
               cache: int = DEFAULT_CACHE) -> FastAPI:
    """The web service over a run (a RUN_DIR, on ``graph`` instead of its recorded GRAPH_DIR
    when given, or an already loaded :class:`Catalogue`); ``cache`` distinct neighbour
    answers are kept (0: none)."""
    catalogue = source if isinstance(source, Catalogue) else Catalogue.load(source, approx=approx, graph=graph, cache=cache)
    app = FastAPIOffline(
        title="graphrec",
        summary="What goes with this product (or this photo)? Recommendations from a trained graphrec run.",
        version=_version(),
        static_url="/static/docs",
        favicon_url="/static/favicon.svg",
    )
    app.state.catalogue = catalogue
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(UploadLimit, limit=MAX_UPLOAD_BYTES + BODY_SLACK)
    _add_error_handlers(app)
    return app


def _version() -> str:
    from graphrec import __version__

    return __version__


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(JSON_PREFIXES)


def _refusal(request: Request, status: int, message: str) -> JSONResponse:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return pages.html_response(html.error_page(status, message, pages.footer(request.app.state.catalogue)), status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def refused(request: Request, error: ServeError):
        return _refusal(request, error.status, str(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        message = error.detail if isinstance(error.detail, str) and error.status_code != 404 else None
        if error.status_code == 404:
            message = f"there is no page at {request.url.path}."
        return _refusal(request, error.status_code, message or "the request could not be answered.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        return _refusal(request, 422, _one_sentence(error))

    @app.exception_handler(UsageError)
    async def unusable(request: Request, error: UsageError):
        return _refusal(request, 422, request.app.state.catalogue.public_message(str(error)))

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception):  # uvicorn logs the traceback
        return _refusal(request, 500, "the server failed to answer this request; the error is in its log.")


def _one_sentence(error: RequestValidationError) -> str:
    """The first validation problem as one sentence naming the parameter."""
    problems = error.errors()
    if not problems:
        return "the request is not valid."
    first = problems[0]
    name = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
    value = first.get("input")
    got = f" (got {value!r})" if isinstance(value, (str, int, float)) else ""
    message = str(first.get("msg") or "is not valid").rstrip(".")
    return f"{name}: {message[:1].lower()}{message[1:]}{got}."


class UploadLimit:
    """ASGI middleware: a POST body over ``limit`` bytes to an upload route is refused with
    413 (through the app's handlers, so JSON or a page), from its Content-Length before any
    of it is read, or as soon as the streamed bytes pass the limit."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in UPLOAD_PATHS:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        seen = int(declared) if declared.isdigit() else 0

        async def counted():
            nonlocal seen
            if seen > self.limit:
                raise HTTPException(413, _too_large())
            message = await receive()
            if not declared.isdigit():
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, _too_large())
            return message

        return await self.app(scope, counted, send)


def _too_large() -> str:
    return f"the upload is larger than {MAX_UPLOAD_BYTES // 2**20} MB; send a smaller photo."


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port`` (port 0: a free one), or a UsageError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise UsageError(f"--host {host} is not an address this machine can listen on ({error.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror}); choose another --port or --host.") from None
    return sock


def serve(run_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, approx: bool | str = "auto",
          access_log: bool = True, ready=None, graph: str | os.PathLike | None = None, cache: int = DEFAULT_CACHE) -> None:
    """Load ``run_dir`` once and answer HTTP on ``host:port`` until interrupted.

    ``ready(url, catalogue)`` is called once the socket listens (a client may connect from then on).
    """
    import uvicorn

    app = create_app(run_dir, approx=approx, graph=graph, cache=cache)
    sock = bind(host, port)
    sock.listen(BACKLOG)  # from now on connections wait in the queue until uvicorn takes them
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    if ready is not None:
        ready(f"http://{shown}:{bound[1]}", app.state.catalogue)
    config = uvicorn.Config(app, log_level="info", access_log=access_log, timeout_graceful_shutdown=5, backlog=BACKLOG)
    uvicorn.Server(config).run(sockets=[sock])
