"""The JSON API. The routes that compute are plain ``def``: FastAPI runs them in its thread
pool, so requests are answered concurrently while faiss searches (which release the GIL).
``/healthz`` and an already-answered neighbour query are answered on the event loop itself,
without a thread hop.

Neighbour rows are serialised by :func:`graphrec.recommend.to_json`, the function behind
``graphrec neighbours --json``, so both print the same records. Errors are
``{"detail": "one sentence"}`` with a 4xx status (see :mod:`graphrec.serve.app`).
"""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from graphrec.recommend import to_json
from graphrec.serve.catalogue import MAX_K, Catalogue

__all__ = ["router"]

router = APIRouter()

K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many products to return (1 to {MAX_K}).")]
CATEGORY = Annotated[Optional[str], Query(description="Only products with a category path starting with this "
                     "'|'-separated prefix (GET /api/categories lists them), e.g. 'Clothing, Shoes & Jewelry|Women'.")]
EXCLUDE_KNOWN = Annotated[bool, Query(description="Drop products already linked to the query in the run's training relation.")]
NOT_FOUND = {"detail": "ASIN B000XXXXXX is not in this catalogue of 800 products."}
ERRORS = {404: {"description": "Unknown ASIN", "content": {"application/json": {"example": NOT_FOUND}}}}


class Neighbour(BaseModel):
    """One recommendation, as a record of ``graphrec neighbours --json``."""

    query: str
    rank: int
    asin: str
    title: Optional[str]
    brand: Optional[str]
    price: Optional[float]
    distance: Optional[float]
    probability: float


class Product(BaseModel):
    asin: str
    title: Optional[str]
    brand: Optional[str]
    price: Optional[float]
    category: Optional[str]
    categories: list[str]
    image: Optional[str]


class CategoryCount(BaseModel):
    category: str
    products: int


class Health(BaseModel):
    status: str
    run: str
    decoder: str
    k: Optional[int]
    relation: Optional[str]
    graph: str
    products: int
    index: Optional[str]
    photo_queries: bool
    answers_kept: int
    prefilled: bool


def catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


def _records(table) -> Response:
    return Response(to_json(table), media_type="application/json")


@router.get("/api/neighbours/{asin}", response_model=list[Neighbour], responses=ERRORS, tags=["recommendations"])
async def neighbours(request: Request, asin: str, k: K = 10, category: CATEGORY = None, exclude_known: EXCLUDE_KNOWN = False):
    """The products that go with ``asin``, nearest first, never ``asin`` itself: the rows of
    ``graphrec neighbours ASIN --json``."""
    # an answer kept from before is sent from the event loop; only a new query goes to the thread pool
    served = catalogue(request)
    body = served.answers.get((asin, k, category, exclude_known))
    if body is None:
        body = await run_in_threadpool(served.answer_json, asin, k, category, exclude_known)
    return Response(body, media_type="application/json")


@router.post("/api/neighbours/image", response_model=list[Neighbour], tags=["recommendations"],
             responses={413: {"description": "Over 20 MB or too many pixels"}, 415: {"description": "Not an image"}})
def neighbours_for_image(request: Request, photo: UploadFile = File(..., description="A product photo (JPEG, PNG or WebP, at most 20 MB)."),
                         k: K = 10, category: CATEGORY = None, exclude_known: EXCLUDE_KNOWN = False):
    """Cold start: the products nearest to an uploaded photo (as ``graphrec neighbours --image``)."""
    table = catalogue(request).neighbours_for_upload(photo.file, k=k, category=category, exclude_known=exclude_known)
    table.insert(0, "query", photo.filename or "photo")
    return _records(table)


@router.get("/api/products/{asin}", response_model=Product, responses=ERRORS, tags=["catalogue"])
def product(request: Request, asin: str):
    """One product: title, brand, price, category paths and the address of its image."""
    return catalogue(request).product(asin)


@router.get("/api/search", response_model=list[Product], tags=["catalogue"])
def search(request: Request, q: str = Query(..., max_length=200, description="An ASIN prefix, or the first letters of words in the title or brand."),
           limit: int = Query(20, ge=1, le=MAX_K, description="At most this many products.")):
    """Products whose ASIN starts with ``q``, or whose title or brand has words starting with every word of ``q``."""
    return catalogue(request).search(q, limit)


@router.get("/api/categories", response_model=list[CategoryCount], tags=["catalogue"])
def categories(request: Request):
    """Every category path prefix of the catalogue, with how many products it covers."""
    return [{"category": c.path, "products": c.products} for c in catalogue(request).categories]


@router.get("/images/{asin}", response_class=FileResponse, responses=ERRORS, tags=["catalogue"])
def image(request: Request, asin: str):
    """The product's image, read only from the graph's images folder."""
    return FileResponse(catalogue(request).image_file(asin), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/healthz", response_model=Health, tags=["service"])
async def health(request: Request):  # no blocking work: answered on the event loop
    """The run being served, its graph and the number of products."""
    return catalogue(request).health()
