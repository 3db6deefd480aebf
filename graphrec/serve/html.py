"""Server-rendered HTML for the browsing pages: plain strings, every value escaped.

No template engine and no build step: a page is :func:`page` around a few blocks
(product cards in a grid, the product's own panel, the filter and upload forms). The
style sheet and the small script come from ``/static/`` (graphrec's own files), and each
page forbids anything else with a Content-Security-Policy header.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from graphrec.serve.catalogue import MAX_K, MAX_UPLOAD_BYTES, Category

__all__ = ["CSP", "error_page", "home_page", "photo_page", "product_page"]

CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'"
K_CHOICES = (5, 10, 20, 50)


def page(title: str, body: str, footer: str, query: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · graphrec</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="bar">
<a class="logo" href="/">graph<b>rec</b></a>
<form class="search" action="/" method="get" role="search">
<input type="search" name="q" value="{escape(query)}" placeholder="Search by title, brand or ASIN" aria-label="Search products" autocomplete="off">
<button type="submit">Search</button>
</form>
</header>
<main>
{body}
</main>
<footer>{footer} · <a href="/docs">API documentation</a></footer>
</body>
</html>
"""


def _product_url(asin: str, **params) -> str:
    query = urlencode({key: value for key, value in params.items() if value not in (None, "", False)})
    return f"/products/{quote(asin, safe='')}" + (f"?{query}" if query else "")


def _price(value: float | None) -> str:
    return "" if value is None else f"${value:,.2f}"


def _thumb(product: dict, css: str = "thumb") -> str:
    title = product.get("title") or product["asin"]
    if not product.get("image"):
        return f'<div class="{css} none" role="img" aria-label="no image">no image</div>'
    return f'<div class="{css}"><img src="{escape(product["image"])}" alt="{escape(title)}" loading="lazy"></div>'


def card(product: dict, probability: float | None = None) -> str:
    """A clickable tile: image, title, brand and price, and the model's probability."""
    meta = " · ".join(escape(part) for part in (product.get("brand") or "", _price(product.get("price"))) if part)
    score = ""
    if probability is not None and probability == probability:
        score = (f'<span class="score" title="probability that these go together">'
                 f'<meter min="0" max="1" value="{probability:.4f}"></meter> p = {probability:.3f}</span>')
    return (f'<a class="card" href="{escape(_product_url(product["asin"]))}" data-asin="{escape(product["asin"])}">'
            f'{_thumb(product)}<span class="title">{escape(product.get("title") or product["asin"])}</span>'
            f'<span class="meta">{meta}</span>{score}</a>')


def grid(cards: list[str], empty: str) -> str:
    if not cards:
        return f'<p class="empty">{escape(empty)}</p>'
    return '<div class="grid">' + "".join(cards) + "</div>"


def upload_form(k: int = 10, category: str | None = None) -> str:
    hidden = f'<input type="hidden" name="category" value="{escape(category)}">' if category else ""
    return f"""<section class="upload">
<h2>Match a photo</h2>
<form action="/photo" method="post" enctype="multipart/form-data">
<input type="file" name="photo" accept="image/png,image/jpeg,image/webp" required aria-label="Photo" data-max-bytes="{MAX_UPLOAD_BYTES}">
<input type="hidden" name="k" value="{k}">{hidden}
<button type="submit">Find matches</button>
<small>JPEG, PNG or WebP, at most {MAX_UPLOAD_BYTES // 2**20} MB.</small>
</form>
</section>"""


def home_page(products: list[dict], footer: str, query: str = "") -> str:
    if query:
        heading = f'<h1>Products matching “{escape(query)}”</h1>'
        body = grid([card(p) for p in products], f"Nothing matches {query!r}; try the first letters of a word or an ASIN.")
    else:
        heading = "<h1>Browse the catalogue</h1><p class=\"lead\">Pick a product to see what goes with it.</p>"
        body = grid([card(p) for p in products], "This catalogue has no products.")
    return page(f"search: {query}" if query else "catalogue", f"{heading}\n{body}\n{upload_form()}", footer, query)


def filters(asin: str, k: int, category: str | None, exclude_known: bool, categories: list[Category]) -> str:
    options = ['<option value="">all categories</option>']
    for item in categories:
        label = ("\u2003" * item.depth) + item.path.rsplit("|", 1)[-1]
        chosen = " selected" if item.path == category else ""
        options.append(f'<option value="{escape(item.path)}"{chosen}>{escape(label)} ({item.products:,})</option>')
    sizes = "".join(f'<option value="{n}"{" selected" if n == k else ""}>{n}</option>' for n in sorted({*K_CHOICES, k}) if n <= MAX_K)
    checked = " checked" if exclude_known else ""
    return f"""<form class="filters" action="{escape(_product_url(asin))}" method="get">
<label>Category <select name="category">{"".join(options)}</select></label>
<label>Show <select name="k">{sizes}</select></label>
<label class="check"><input type="checkbox" name="exclude_known" value="true"{checked}> hide products already bought together</label>
<button type="submit">Apply</button>
</form>"""


def product_page(product: dict, recommendations: list[tuple[dict, float]], footer: str, *, k: int, category: str | None,
                 exclude_known: bool, categories: list[Category]) -> str:
    facts = [f'<p class="brand">{escape(product["brand"])}</p>' if product.get("brand") else "",
             f'<p class="price">{_price(product.get("price"))}</p>' if product.get("price") is not None else "",
             "".join(f'<p class="path">{escape(path.replace("|", " › "))}</p>' for path in product["categories"]),
             f'<p class="asin">ASIN {escape(product["asin"])}</p>']
    title = product.get("title") or product["asin"]
    body = f"""<section class="product">
{_thumb(product, "hero")}
<div class="details"><h1>{escape(title)}</h1>{"".join(facts)}</div>
</section>
<section class="recs">
<h2>Goes well with</h2>
{filters(product["asin"], k, category, exclude_known, categories)}
{grid([card(p, prob) for p, prob in recommendations], "No product matches these filters.")}
</section>
{upload_form(k, category)}"""
    return page(title, body, footer)


def photo_page(thumbnail: str, name: str, recommendations: list[tuple[dict, float]], footer: str) -> str:
    body = f"""<section class="product">
<div class="hero"><img src="{escape(thumbnail)}" alt="your photo"></div>
<div class="details"><h1>Your photo</h1><p class="path">{escape(name)}</p><p>Products whose style is closest to it.</p></div>
</section>
<section class="recs"><h2>Goes well with</h2>
{grid([card(p, prob) for p, prob in recommendations], "No product matches.")}
</section>
{upload_form()}"""
    return page("your photo", body, footer)


def error_page(status: int, message: str, footer: str) -> str:
    titles = {404: "Not found", 413: "Too large", 415: "Not an image", 422: "Cannot do that"}
    heading = titles.get(status, "Something went wrong")
    body = f"""<section class="error"><h1>{escape(heading)}</h1><p>{escape(message)}</p>
<p><a href="/">Back to the catalogue</a> or search above.</p></section>"""
    return page(heading, body, footer)
