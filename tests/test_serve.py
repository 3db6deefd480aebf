"""``graphrec serve``: the JSON API and the pages through FastAPI's TestClient, the bad
input the issue lists, concurrent reads of one recommender, and the real server.

The run is trained once per session on a connected corner of the bundled sample (real
titles, categories and images; fc7 features from a seeded random AlexNet; a few epochs).
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from graphrec.cli import app as cli
from graphrec.recommend import Recommender, to_json
from graphrec.sample import SAMPLE_IMAGES, SAMPLE_META
from graphrec.serve import MAX_K, Catalogue, create_app
from graphrec.serve.app import UploadLimit
from graphrec.serve.search import ProductSearch

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = 120
runner = CliRunner()


def _connected_asins(graph_dir: Path, size: int) -> list[str]:
    """``size`` ASINs reached breadth-first over also_bought from the first product."""
    from graphrec.graph import load_graph

    graph = load_graph(graph_dir)
    edges = graph.edge_index("also_bought").numpy()
    partners: dict[int, list[int]] = {}
    for a, b in edges.T:
        partners.setdefault(int(a), []).append(int(b))
        partners.setdefault(int(b), []).append(int(a))
    order, seen = [int(edges[0, 0])], {int(edges[0, 0])}
    for node in order:
        for other in partners.get(node, []):
            if other not in seen and len(order) < size:
                seen.add(other)
                order.append(other)
    return [str(graph.asins[i]) for i in order]


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory) -> Path:
    """RUN_DIR of a mahalanobis model (K = 4, 3 epochs) on ~120 sample products with images."""
    import warnings

    from graphrec.extract import extract_features
    from graphrec.graph import build_graph
    from graphrec.train import train

    root = tmp_path_factory.mktemp("serve")
    meta = SAMPLE_META
    build_graph(meta, root / "outline", None, quiet=True)
    asins = _connected_asins(root / "outline", PRODUCTS)
    images = root / "images"
    images.mkdir()
    for asin in asins:
        (images / f"{asin}.png").write_bytes((SAMPLE_IMAGES / f"{asin}.png").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extract_features(images=images, out=root / "features.b", weights="random", workers=0, quiet=True)
    build_graph(meta, root / "graph", root / "features.b", images=images, quiet=True)
    run = train(root / "graph", decoder="mahalanobis", k=4, epochs=3, weight_decay=1e-3, out_dir=root / "run", quiet=True)
    return run.path


@pytest.fixture(scope="module")
def catalogue(serve_run) -> Catalogue:
    loaded = Catalogue.load(serve_run)
    assert loaded.prefilled.wait(120)  # the background prefill of every product's default answer
    return loaded


@pytest.fixture(scope="module")
def client(catalogue) -> TestClient:
    return TestClient(create_app(catalogue), raise_server_exceptions=False)


def _asins(catalogue: Catalogue, n: int = 3) -> list[str]:
    return [str(a) for a in catalogue.products["asin"].iloc[:n]]


# --- the JSON API ------------------------------------------------------------------------

def test_neighbour_rows_are_those_of_neighbours_json(serve_run, client, catalogue):
    women = "Clothing, Shoes & Jewelry|Women"
    for asin in _asins(catalogue):
        for options, params in [([], {}), (["--category", women, "--exclude-known"], {"category": women, "exclude_known": "true"})]:
            cli_run = runner.invoke(cli, ["neighbours", asin, "--run", str(serve_run), "--top", "7", "--json", *options])
            assert cli_run.exit_code == 0, cli_run.output
            response = client.get(f"/api/neighbours/{asin}", params={"k": 7, **params})
            assert response.status_code == 200, response.text
            assert response.json() == json.loads(cli_run.stdout)
            rows = response.json()
            assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1)) and asin not in {r["asin"] for r in rows}
            assert set(rows[0]) == {"query", "rank", "asin", "title", "brand", "price", "distance", "probability"}


def test_category_filter_keeps_only_that_category(client, catalogue):
    men = "Clothing, Shoes & Jewelry|Men"
    rows = client.get(f"/api/neighbours/{_asins(catalogue)[0]}", params={"k": 20, "category": men}).json()
    assert rows
    for row in rows:
        product = client.get(f"/api/products/{row['asin']}").json()
        assert any(path.startswith(men + "|") or path == men for path in product["categories"])
    listed = {c["category"]: c["products"] for c in client.get("/api/categories").json()}
    assert listed["Clothing, Shoes & Jewelry"] == catalogue.graph.num_nodes and 0 < listed[men] < catalogue.graph.num_nodes
    refused = client.get(f"/api/neighbours/{_asins(catalogue)[0]}", params={"category": "Garden|Tools"})
    assert refused.status_code == 422 and "Garden|Tools" in refused.json()["detail"]


def test_answers_are_kept_and_give_the_same_bytes_and_errors_are_not(serve_run, catalogue, monkeypatch):
    kept = Catalogue(catalogue.rec, cache=2)
    client = TestClient(create_app(kept), raise_server_exceptions=False)
    asins = _asins(catalogue, 4)
    first = client.get(f"/api/neighbours/{asins[1]}", params={"k": 5})
    monkeypatch.setattr(kept.rec, "neighbours_batch", lambda *a, **k: pytest.fail("asked again"))
    again = client.get(f"/api/neighbours/{asins[1]}", params={"k": 5})
    assert again.status_code == 200 and again.content == first.content and kept.answers.hits == 1
    monkeypatch.undo()
    for _ in range(2):  # an error is answered again, not kept
        assert client.get("/api/neighbours/NOT_AN_ASIN").status_code == 404
    assert len(kept.answers) == 1
    for asin in asins[2:]:
        client.get(f"/api/neighbours/{asin}", params={"k": 5})
    assert len(kept.answers) == 2 and kept.answers.get((asins[1], 5, None, False)) is None  # the oldest went first
    uncached = Catalogue(catalogue.rec, cache=0)
    assert TestClient(create_app(uncached)).get(f"/api/neighbours/{asins[1]}", params={"k": 5}).content == first.content
    assert len(uncached.answers) == 0


def test_the_category_of_a_request_is_matched_case_insensitively(client, catalogue):
    asin, men = _asins(catalogue)[0], "Clothing, Shoes & Jewelry|Men"
    exact = client.get(f"/api/neighbours/{asin}", params={"k": 6, "category": men})
    lower = client.get(f"/api/neighbours/{asin}", params={"k": 6, "category": men.lower()})
    assert lower.status_code == 200 and lower.json() == exact.json()


def test_category_masks_match_the_graph(serve_run, catalogue):
    from graphrec.graph import load_graph

    fresh = load_graph(Path(catalogue.graph.path))
    assert catalogue.graph.category_mask != fresh.category_mask  # the catalogue's cached masks are in use
    for prefix in [c.path for c in catalogue.categories] + ["Clothing, Shoes & Jewelry | Women ", "Garden"]:
        np.testing.assert_array_equal(catalogue.graph.category_mask(prefix), fresh.category_mask(prefix), err_msg=prefix)
    assert not catalogue.graph.category_mask("Clothing, Shoes & Jewelry").flags.writeable


def test_products_search_and_health(client, catalogue, serve_run):
    asin = _asins(catalogue)[0]
    product = client.get(f"/api/products/{asin}").json()
    row = catalogue.products.iloc[0]
    assert product["asin"] == asin and product["title"] == row["title"] and product["brand"] == row["brand"]
    assert product["image"] == f"/images/{asin}" and product["categories"] == json.loads(row["categories"])
    hits = [p["asin"] for p in client.get("/api/search", params={"q": asin.lower(), "limit": 100}).json()]
    assert hits == [asin]
    hits = [p["asin"] for p in client.get("/api/search", params={"q": asin[:5], "limit": 100}).json()]
    assert asin in hits and all(h.startswith(asin[:5]) for h in hits)
    brand = row["brand"]
    found = client.get("/api/search", params={"q": brand[:3]}).json()
    assert asin in {p["asin"] for p in found} and all(
        any(w.lower().startswith(brand[:3].lower()) for w in re.findall(r"\w+", f"{p['title']} {p['brand']}")) for p in found)
    assert client.get("/api/search", params={"q": "zzzzqqq"}).json() == []
    assert client.get("/api/search", params={"q": "", "limit": 0}).status_code == 422
    health = client.get("/healthz").json()
    assert health == {**health, "status": "ok", "run": serve_run.name, "graph": "graph", "products": catalogue.graph.num_nodes,
                      "decoder": "mahalanobis", "index": "flat"}
    assert str(serve_run.parent) not in json.dumps(health)


def test_product_search_by_asin_and_word_prefixes():
    products = pd.DataFrame({
        "asin": ["B0001", "B0002", "A0003", "B0104"],
        "title": ["Red Shoes", "Shirt by Redwood", "Blue shirt", None],
        "brand": ["Acme", None, "Redline", "Zed"],
    })
    search = ProductSearch(products)
    assert search.search("b00") == [0, 1] and search.search("B0") == [0, 1, 3] and search.search("a0003") == [2]
    assert search.search("red") == [0, 1, 2] and search.search("RED SH") == [0, 1, 2]
    assert search.search("red sho") == [0] and search.search("zed") == [3] and search.search("  ") == []
    assert search.search("sh", limit=2) == [0, 1] and search.search("nothing") == []


def test_product_search_agrees_with_a_plain_scan():
    rng = np.random.default_rng(3)
    words = ["red", "reef", "blue", "blush", "shoe", "shirt", "short", "tote", "bag", "boot"]
    titles = [" ".join(rng.choice(words, rng.integers(0, 4))) or None for _ in range(300)]
    products = pd.DataFrame({"asin": [f"B{i:04d}" for i in range(300)], "title": titles, "brand": rng.choice(["Acme", "Zed", None], 300)})
    search = ProductSearch(products)
    for query in ["re", "red sh", "bl sh t", "b", "shirt red", "acme bo", "zed", "x", "B01", "b02 "]:
        expected = [i for i in range(300) if str(products["asin"][i]).lower().startswith(query.strip().lower()) and " " not in query.strip()]
        terms = re.findall(r"\w+", query.lower())
        for i in range(300):
            have = re.findall(r"\w+", f"{titles[i] or ''} {products['brand'][i] or ''}".lower())
            if all(any(w.startswith(t) for w in have) for t in terms) and i not in expected:
                expected.append(i)
        assert search.search(query, limit=1000) == expected, query


# --- bad input -------------------------------------------------------------------------

def test_unknown_asin_is_404_json_and_a_friendly_page(client, serve_run):
    for path in ("/api/neighbours/B00NOSUCH1", "/api/products/B00NOSUCH1", "/images/B00NOSUCH1"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"] == "application/json"
        detail = response.json()["detail"]
        assert "B00NOSUCH1" in detail and detail.endswith(".") and detail.count(". ") == 0
        assert str(serve_run.parent) not in detail
    page = client.get("/products/B00NOSUCH1", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text and "B00NOSUCH1" in page.text and 'href="/"' in page.text
    assert client.get("/no/such/page").status_code == 404


@pytest.mark.parametrize("k", ["0", "-3", str(MAX_K + 1), "ten"])
def test_k_out_of_range_is_422(client, catalogue, k):
    asin = _asins(catalogue)[0]
    response = client.get(f"/api/neighbours/{asin}", params={"k": k})
    assert response.status_code == 422 and response.json()["detail"].startswith("k: ")
    assert client.get(f"/products/{asin}", params={"k": k}).status_code == 422
    assert client.get(f"/api/neighbours/{asin}", params={"k": MAX_K}).status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_uploads_that_are_not_photos_are_refused(client, catalogue):
    photo = catalogue.products["image_path"].iloc[0]
    good = Path(photo).read_bytes()
    cases = {
        "notes.txt": (b"this is not an image at all", 415),
        "empty.png": (b"", 400),
        "bomb.png": (_png_header_only(9000, 9000), 413),
        "cut.png": (good[: len(good) // 2], 415),
        "huge.jpg": (b"\xff" * (21 * 1024 * 1024), 413),
    }
    for name, (data, status) in cases.items():
        response = client.post("/api/neighbours/image", files={"photo": (name, data, "image/png")})
        assert response.status_code == status, (name, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and len(detail) > 20 and "/tmp" not in detail and "graphrec-upload" not in detail
        assert client.post("/photo", files={"photo": (name, data, "image/png")}).headers["content-type"].startswith("text/html")
    assert client.get("/healthz").status_code == 200


def test_upload_limit_also_cuts_off_a_streamed_body():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def echo(request):
        return PlainTextResponse(str(len(await request.body())))

    inner = Starlette(routes=[Route("/photo", echo, methods=["POST"])])
    client = TestClient(UploadLimit(inner, limit=1000))
    assert client.post("/photo", content=b"x" * 1000).text == "1000"
    assert client.post("/photo", content=b"x" * 1001).status_code == 413  # refused from Content-Length
    streamed = client.post("/photo", content=iter([b"x" * 600, b"x" * 600]))  # chunked: no Content-Length
    assert streamed.status_code == 413 and "20 MB" in streamed.text


def test_photo_upload_gives_the_neighbours_of_the_photo(client, catalogue, tmp_path):
    photo = Path(catalogue.products["image_path"].iloc[1]).read_bytes()
    response = client.post("/api/neighbours/image", params={"k": 5}, files={"photo": ("mine.png", photo, "image/png")})
    assert response.status_code == 200, response.text
    copy = tmp_path / "mine.png"  # not a catalogue file, so the product itself is a candidate
    copy.write_bytes(photo)
    expected = catalogue.rec.neighbours_for_image(copy, top=5)
    rows = response.json()
    assert [r["asin"] for r in rows] == list(expected["asin"]) and rows[0]["asin"] == catalogue.products["asin"].iloc[1]
    np.testing.assert_allclose([r["distance"] for r in rows], expected["distance"], rtol=1e-6, atol=1e-9)
    assert all(r["query"] == "mine.png" for r in rows)
    page = client.post("/photo", data={"k": "4"}, files={"photo": ("mine.png", photo, "image/png")})
    assert page.status_code == 200 and "data:image/jpeg;base64," in page.text
    assert re.findall(r'class="card" href="/products/(\w+)"', page.text) == [r["asin"] for r in rows[:4]]


def test_images_are_served_only_from_the_images_folder(serve_run, tmp_path):
    catalogue = Catalogue(Recommender.load(serve_run))
    client = TestClient(create_app(catalogue), raise_server_exceptions=False)
    first = str(catalogue.products["asin"].iloc[0])
    served = client.get(f"/images/{first}")
    assert served.status_code == 200 and served.content == Path(catalogue.products["image_path"].iloc[0]).read_bytes()
    assert served.headers["content-type"] == "image/png"
    for path in ("/images/..%2F..%2Fetc%2Fpasswd", "/images/%2e%2e/%2e%2e/etc/passwd", "/images/%2e%2e", "/images/%2Fetc%2Fpasswd",
                 "/static/..%2F..%2Fcatalogue.py", "/static/../app.py"):
        response = client.get(path)
        assert response.status_code == 404 and "root:" not in response.text and "import" not in response.text, path
    secret = tmp_path / "secret.png"
    secret.write_bytes(served.content)
    images_dir = Path(catalogue.rec.images_dir())
    link = images_dir / "LINKOUT.png"
    link.symlink_to(secret)
    try:
        tampered = catalogue.products.copy()
        tampered.loc[1, "image_path"] = str(link)  # a link inside the folder that leads outside it
        tampered.loc[2, "image_path"] = str(secret)  # a path outside the folder
        tampered.loc[3, "image_path"] = str(images_dir / ".." / "graph" / "manifest.json")
        catalogue.products = tampered
        for row in (1, 2, 3):
            assert client.get(f"/images/{tampered['asin'].iloc[row]}").status_code == 404
    finally:
        link.unlink()


def test_a_failing_request_does_not_stop_the_service(catalogue, monkeypatch):
    client = TestClient(create_app(catalogue), raise_server_exceptions=False)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(catalogue, "search", broken)
    response = client.get("/api/search", params={"q": "a"})
    assert response.status_code == 500 and "simulated" not in response.text and response.json()["detail"]
    assert client.get("/healthz").status_code == 200
    monkeypatch.undo()
    assert client.get("/api/search", params={"q": "a"}).status_code == 200


def test_recommender_errors_are_422_without_server_paths(catalogue, monkeypatch):
    from graphrec.errors import UsageError

    client = TestClient(create_app(catalogue))

    def refuse(*args, **kwargs):
        raise UsageError(f"the run {catalogue.rec.run.path} records no training relation, so --exclude-known cannot be used.")

    monkeypatch.setattr(catalogue.rec, "neighbours_batch", refuse)
    catalogue.answers.clear()  # answers kept by earlier tests would not ask the recommender
    response = client.get(f"/api/neighbours/{_asins(catalogue)[0]}", params={"exclude_known": "true"})
    assert response.status_code == 422
    assert response.json()["detail"] == "the run run records no training relation, so --exclude-known cannot be used."


# --- pages -----------------------------------------------------------------------------

def test_pages_show_products_and_their_recommendations(client, catalogue):
    home = client.get("/")
    assert home.status_code == 200 and 'name="viewport"' in home.text and home.text.count('class="card"') >= 20
    asin = _asins(catalogue)[0]
    page = client.get(f"/products/{asin}", params={"k": 6})
    assert page.status_code == 200
    rows = client.get(f"/api/neighbours/{asin}", params={"k": 6}).json()
    assert re.findall(r'class="card" href="/products/(\w+)"', page.text) == [r["asin"] for r in rows]
    assert all(f"p = {r['probability']:.3f}" in page.text for r in rows)
    assert f'src="/images/{asin}"' in page.text and 'name="category"' in page.text and 'enctype="multipart/form-data"' in page.text
    assert "Clothing, Shoes &amp; Jewelry|Women" in page.text  # the filter's values are the category paths
    filtered = client.get(f"/products/{asin}", params={"category": "Clothing, Shoes & Jewelry|Women", "k": 5})
    assert filtered.status_code == 200 and "selected" in filtered.text
    search = client.get("/", params={"q": catalogue.products["brand"].iloc[0]})
    assert f'href="/products/{asin}"' in search.text


def test_pages_and_docs_load_nothing_from_elsewhere(client):
    for path in ("/", f"/products/{client.get('/api/search', params={'q': 'b'}).json()[0]['asin']}", "/docs"):
        text = client.get(path).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', text) + re.findall(r"(?:url|href): ?'([^']+)'", text)
        assert sources and all(s.startswith("/") or s.startswith("data:") or s.startswith("#") for s in sources), (path, sources)
        for source in sources:
            if source.startswith("/static/"):
                assert client.get(source).status_code == 200, source
    assert "Content-Security-Policy" in client.get("/").headers
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/neighbours/{asin}", "/api/neighbours/image", "/api/products/{asin}",
                                                                   "/api/search", "/healthz", "/images/{asin}"}


def test_html_escapes_catalogue_text(serve_run):
    rec = Recommender.load(serve_run)
    catalogue = Catalogue(rec)
    catalogue.products = catalogue.products.assign(title=catalogue.products["title"].where(catalogue.products.index != 0, '<script>alert(1)</script>'))
    client = TestClient(create_app(catalogue))
    page = client.get(f"/products/{catalogue.products['asin'].iloc[0]}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- concurrency and the real server ---------------------------------------------------

def test_concurrent_reads_give_the_serial_answers(catalogue):
    asins = [str(a) for a in catalogue.products["asin"]]
    jobs = [(asins[i % len(asins)], 1 + i % 12, bool(i % 2)) for i in range(240)]
    serial = [to_json(catalogue.neighbours(a, k=k, exclude_known=e)) for a, k, e in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda job: to_json(catalogue.neighbours(job[0], k=job[1], exclude_known=job[2])), jobs))
    assert parallel == serial and len(set(serial)) > 100


@pytest.fixture(scope="session")
def live_server(serve_run):
    """``graphrec serve --port 0`` in a subprocess; yields its address."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "graphrec.cli", "serve", "--run", str(serve_run), "--port", "0", "--no-access-log"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert match, line + process.stdout.read() if process.poll() is not None else line
        url = match.group(1)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "graphrec serve did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_graphrec_serve_answers_over_http(live_server, catalogue):
    with urllib.request.urlopen(live_server + "/healthz") as response:
        assert json.load(response)["products"] == catalogue.graph.num_nodes
    asin = _asins(catalogue)[0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda _: urllib.request.urlopen(f"{live_server}/api/neighbours/{asin}?k=5").read(), range(32)))
    assert len(set(bodies)) == 1 and len(json.loads(bodies[0])) == 5
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{live_server}/api/neighbours/{asin}?k=0")
    assert refused.value.code == 422


def test_serve_refuses_a_port_in_use(serve_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--run", str(serve_run), "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output and "Traceback" not in result.output
    missing = runner.invoke(cli, ["serve", "--run", str(serve_run.parent / "nope")])
    assert missing.exit_code != 0 and "not a run directory" in missing.output


def test_a_small_catalogue_keeps_every_products_default_answer_in_the_background(catalogue):
    fresh = Catalogue(catalogue.rec)
    assert fresh.prefilled.wait(120) and len(fresh.answers) == fresh.graph.num_nodes
    health = TestClient(create_app(fresh)).get("/healthz").json()
    assert health["prefilled"] is True and health["answers_kept"] == fresh.graph.num_nodes
    asin = _asins(catalogue)[2]
    kept = fresh.answers.get((asin, 10, None, False))
    assert kept is not None and json.loads(kept) == json.loads(to_json(fresh.neighbours(asin, k=10)))
    assert Catalogue(catalogue.rec, cache=10).prefilled.is_set()  # too big for its cache: nothing to prefill
