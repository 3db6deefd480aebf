"""``graphrec neighbours`` end to end on a graph built by build_graph, and the cold-start
path: a product's own photo as the query gives the same neighbours as its ASIN."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.graph import build_graph, manifest_checksum
from graphrec.io.features import BinaryFeatureWriter
from graphrec.models import LinearEncoder, MahalanobisModel
from graphrec.recommend import Recommender
from graphrec.runs import RunWriter

runner = CliRunner()
N = 24
CATS = [["Clothing, Shoes & Jewelry", "Men", "Shoes"], ["Clothing, Shoes & Jewelry", "Women"]]


def write_catalogue(root, n=N, features=None, dim=16, sidecar=None, images=None, dtype="float32", bare_every=0):
    """Metadata (2014 format) + a .b file (+ sidecar), built into a GRAPH_DIR with build_graph.
    With ``bare_every`` = m, every m-th product has no title, brand or price."""
    rng = np.random.default_rng(1)
    asins = [f"A{i:09d}" for i in range(n)]
    lines = []
    for i, asin in enumerate(asins):
        partners = [asins[j] for j in rng.choice(n, 3, replace=False) if j != i]
        record = {"asin": asin, "title": f"Item {i} with a rather long descriptive title", "brand": f"brand{i % 3}",
                  "price": 10.0 + i, "categories": [CATS[i % 2]], "related": {"also_bought": partners}}
        if bare_every and i % bare_every == 0:
            del record["title"], record["brand"], record["price"]
        lines.append(repr(record))
    meta = root / "meta.json.gz"
    with gzip.open(meta, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    values = features if features is not None else rng.standard_normal((n, dim)).astype(np.float32)
    b = root / "features.b"
    with BinaryFeatureWriter(b, dim=values.shape[1]) as writer:
        writer.write(asins, values)
    if sidecar is not None:
        (root / "features.b.json").write_text(json.dumps(sidecar))
    graph_dir = root / "graph"
    build_graph(meta, graph_dir, b, feature_dim=values.shape[1], dtype=dtype, images=images, quiet=True)
    return asins, graph_dir


def write_run(root, graph_dir, feature_dim, k=4):
    model = MahalanobisModel(LinearEncoder(feature_dim=feature_dim, k=k, seed=5))
    with torch.no_grad():
        model.decoder.shift.fill_(3.0)
    writer = RunWriter(root / "run")
    writer.write_config({"decoder": model.name, "k": k, "relation": "also_bought", "seed": 5, "graph": str(graph_dir),
                         "graph_checksum": manifest_checksum(graph_dir), "model": model.hparams()})
    writer.write_model(model)
    return writer.commit()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    asins, graph_dir = write_catalogue(root)
    return write_run(root, graph_dir, 16)


def test_json_output_parses_and_excludes_the_query(run_dir):
    result = runner.invoke(app, ["neighbours", "A000000003", "--run", str(run_dir), "--top", "5", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 5 and [r["rank"] for r in records] == [1, 2, 3, 4, 5]
    assert all(r["query"] == "A000000003" and r["asin"] != "A000000003" for r in records)
    assert set(records[0]) >= {"rank", "asin", "title", "brand", "price", "distance", "probability"}
    assert [r["distance"] for r in records] == sorted(r["distance"] for r in records)


def test_table_csv_category_and_several_asins(run_dir, tmp_path):
    table = runner.invoke(app, ["neighbours", "A000000003", "--run", str(run_dir), "--top", "3"])
    assert table.exit_code == 0 and "neighbours of A000000003" in table.stdout and "probability" in table.stdout
    listing = tmp_path / "asins.txt"
    listing.write_text("A000000001  # first\n\nA000000002\n")
    result = runner.invoke(app, ["neighbours", "A000000000", "--from-file", str(listing), "--run", str(run_dir),
                                 "--top", "4", "--csv", "--category", "Clothing, Shoes & Jewelry|Women"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "query,rank,asin,title,brand,price,distance,probability" and len(lines) == 1 + 3 * 4
    queries = [line.split(",")[0] for line in lines[1:]]
    assert queries == ["A000000000"] * 4 + ["A000000001"] * 4 + ["A000000002"] * 4
    rows = [line.split(",") for line in lines[1:]]
    assert all(int(r[2][1:]) % 2 == 1 for r in rows)  # odd items are the Women products
    assert all(r[0] != r[2] for r in rows)


def test_table_shows_products_without_title_brand_or_price(tmp_path):
    asins, graph_dir = write_catalogue(tmp_path, bare_every=4)
    run = write_run(tmp_path, graph_dir, 16)
    result = runner.invoke(app, ["neighbours", "A000000001", "--run", str(run), "--top", str(N - 1)])
    assert result.exit_code == 0, result.output
    assert "A000000004" in result.stdout and "nan" not in result.stdout.lower()  # a bare product, shown blank


def test_exclude_known_on_the_command_line(run_dir):
    rec = Recommender.load(run_dir)
    edges = rec.graph.edge_index("also_bought").numpy()
    partners = {rec.graph.asins[j] for j in np.concatenate([edges[1][edges[0] == 0], edges[0][edges[1] == 0]])}
    assert partners
    result = runner.invoke(app, ["neighbours", "A000000000", "--run", str(run_dir), "--top", "30", "--json", "--exclude-known"])
    got = {r["asin"] for r in json.loads(result.stdout)}
    assert not got & partners and len(got) == N - 1 - len(partners)


def test_unknown_asin_and_bad_category_fail_cleanly(run_dir):
    result = runner.invoke(app, ["neighbours", "A00000000X", "--run", str(run_dir)])
    assert result.exit_code != 0 and "A00000000X" in result.output and "Did you mean" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # a clean exit, no crash
    result = runner.invoke(app, ["neighbours", "A000000001", "--run", str(run_dir), "--category", "Garden"])
    assert result.exit_code != 0 and "Garden" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["neighbours", "--run", str(run_dir)])
    assert result.exit_code != 0 and "ASIN" in result.output
    result = runner.invoke(app, ["neighbours", "A000000001", "--run", str(run_dir.parent / "nope")])
    assert result.exit_code != 0 and "not a run directory" in result.output


def test_picture_without_local_images_uses_placeholders(run_dir, tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["neighbours", "A000000002", "--run", str(run_dir), "--top", "4", "--picture", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as picture:
        assert picture.size[0] > 4 * 150 and picture.size[1] > 150  # query + 4 tiles, one row


# --- cold start: a photo as the query ---------------------------------------------------

def _pattern(rng, size=48) -> Image.Image:
    """A small random image: a colour gradient with a few coloured blocks."""
    base = np.linspace(0, 1, size)[None, :, None] * rng.uniform(0, 255, 3) + rng.uniform(0, 80, 3)
    array = np.broadcast_to(base, (size, size, 3)).copy()
    for _ in range(3):
        y, x = rng.integers(0, size - 12, 2)
        array[y : y + 12, x : x + 12] = rng.uniform(0, 255, 3)
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A graph whose features are fc7 of generated PNGs (random-weight AlexNet), stored float16."""
    from graphrec.vision import Fc7Extractor

    root = tmp_path_factory.mktemp("image")
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(7)
    n = 16
    paths = []
    for i in range(n):
        paths.append(images / f"A{i:09d}.png")
        _pattern(rng).save(paths[-1])
    with pytest.warns(UserWarning):
        extractor = Fc7Extractor("random", seed=0)
    features = extractor.extract_paths(paths)
    sidecar = {"extractor": extractor.spec, "images_dir": str(images), "image_manifest": None, "num_images": n, "skipped": {}}
    asins, graph_dir = write_catalogue(root, n=n, features=features, sidecar=sidecar, dtype="float16")
    new_photo = root / "new.png"
    _pattern(rng).save(new_photo)
    return write_run(root, graph_dir, features.shape[1]), paths, new_photo


def test_own_photo_gives_the_same_neighbours_as_the_asin(image_run):
    run_dir, paths, _ = image_run
    rec = Recommender.load(run_dir)
    assert rec.graph.features.dtype == np.float16
    for i in (0, 5):
        by_asin = rec.neighbours(f"A{i:09d}", top=6)
        by_image = rec.neighbours_for_image(paths[i], top=6)
        assert by_image["asin"].tolist() == by_asin["asin"].tolist()
        assert f"A{i:09d}" not in set(by_image["asin"])
        np.testing.assert_allclose(by_image["distance"], by_asin["distance"], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(by_image["probability"], by_asin["probability"], rtol=1e-3)
    known = rec.neighbours("A000000005", top=15, exclude_known=True)
    assert rec.neighbours_for_image(paths[5], top=15, exclude_known=True)["asin"].tolist() == known["asin"].tolist()
    # the photo's style vector is the product's own (same network, weights and projection)
    np.testing.assert_allclose(rec.embed_image(paths[3])[0], rec.style[3], rtol=1e-3, atol=1e-5)


def test_image_option_on_the_command_line(image_run, tmp_path):
    run_dir, paths, new_photo = image_run
    by_asin = runner.invoke(app, ["neighbours", "A000000002", "--run", str(run_dir), "--top", "5", "--json"])
    out = tmp_path / "cold.png"
    by_image = runner.invoke(app, ["neighbours", "--image", str(paths[2]), "--run", str(run_dir), "--top", "5", "--json", "--picture", str(out)])
    assert by_image.exit_code == 0, by_image.output
    assert [r["asin"] for r in json.loads(by_image.stdout)] == [r["asin"] for r in json.loads(by_asin.stdout)]
    with Image.open(out) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape[0] > 150 and pixels.shape[1] > 5 * 150
    assert (pixels != 255).any(axis=2).mean() > 0.3  # real images drawn, not an empty canvas
    # a photo that is not in the catalogue: every product is a candidate, nearest first
    fresh = runner.invoke(app, ["neighbours", "--image", str(new_photo), "--run", str(run_dir), "--top", "16", "--json"])
    records = json.loads(fresh.stdout)
    assert len(records) == 16 and [r["distance"] for r in records] == sorted(r["distance"] for r in records)
    both = runner.invoke(app, ["neighbours", "A000000002", "--image", str(new_photo), "--run", str(run_dir)])
    assert both.exit_code != 0 and "not both" in both.output


def test_image_needs_a_known_extractor(run_dir, image_run):
    _, paths, _ = image_run
    result = runner.invoke(app, ["neighbours", "--image", str(paths[0]), "--run", str(run_dir)])
    assert result.exit_code != 0 and "does not record which network" in result.output
    assert isinstance(result.exception, SystemExit)
    missing = runner.invoke(app, ["neighbours", "--image", str(paths[0].parent / "nope.png"), "--run", str(image_run[0])])
    assert missing.exit_code != 0 and "nope.png" in missing.output and isinstance(missing.exception, SystemExit)
