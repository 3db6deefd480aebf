"""The browsing pages: the catalogue with a search box, a product with what goes with it,
and the matches for an uploaded photo. Rendered on the server (:mod:`graphrec.serve.html`)
from the same :class:`~graphrec.serve.catalogue.Catalogue` calls as the JSON API."""

from __future__ import annotations

import base64
import io
from typing import Annotated, Optional

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from PIL import Image

from graphrec.io.images import to_rgb
from graphrec.serve import html
from graphrec.serve.catalogue import MAX_K, Catalogue

__all__ = ["footer", "html_response", "router"]

router = APIRouter(include_in_schema=False)
THUMBNAIL = 480  # pixels, the uploaded photo shown back


def html_response(content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status, headers={"Content-Security-Policy": html.CSP})


def footer(catalogue: Catalogue) -> str:
    about = catalogue.health()
    return f"graphrec · run {about['run']} ({about['decoder']}) · {about['products']:,} products"


def _recommendations(catalogue: Catalogue, table) -> list[tuple[dict, float]]:
    return [(catalogue.product(asin), float(p)) for asin, p in zip(table["asin"], table["probability"])]


@router.get("/", response_class=HTMLResponse)
def home(request: Request, q: Annotated[str, Query(max_length=200)] = ""):
    catalogue: Catalogue = request.app.state.catalogue
    products = catalogue.search(q, 60) if q.strip() else catalogue.sample()
    return html_response(html.home_page(products, footer(catalogue), q.strip()))


@router.get("/products/{asin}", response_class=HTMLResponse)
def product(request: Request, asin: str, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
            category: Optional[str] = None, exclude_known: bool = False):
    catalogue: Catalogue = request.app.state.catalogue
    table = catalogue.neighbours(asin, k=k, category=category, exclude_known=exclude_known)
    content = html.product_page(catalogue.product(asin), _recommendations(catalogue, table), footer(catalogue), k=k,
                                category=category or None, exclude_known=exclude_known, categories=catalogue.categories)
    return html_response(content)


@router.post("/photo", response_class=HTMLResponse)
def photo(request: Request, photo: Annotated[UploadFile, File()], k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
          category: Annotated[str, Form()] = ""):
    catalogue: Catalogue = request.app.state.catalogue
    table = catalogue.neighbours_for_upload(photo.file, k=k, category=category or None)
    photo.file.seek(0)
    content = html.photo_page(_thumbnail(photo.file), photo.filename or "photo", _recommendations(catalogue, table), footer(catalogue))
    return html_response(content)


def _thumbnail(file) -> str:
    """A small JPEG of an (already checked) upload, as a data: address."""
    with Image.open(file) as image:
        image.draft("RGB", (THUMBNAIL, THUMBNAIL))  # a JPEG is decoded at a reduced scale
        image.load()
        small = to_rgb(image)  # transparency onto white, as the feature extractor sees it
        small.thumbnail((THUMBNAIL, THUMBNAIL))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")
