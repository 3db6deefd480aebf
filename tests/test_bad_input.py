"""Every bad-input case of issue 7, end to end.

Rules checked for each case: a non-zero exit code when the result would be wrong, a
count-and-continue (with the count in the manifest or sidecar) when skipping is safe, one
clear sentence naming the file / line / ASIN, and no traceback without ``--debug``.
All bad files are generated here, in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import json
import struct
import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from graphrec.cli import app
from graphrec.errors import DataError
from graphrec.graph import build_graph, load_graph, manifest_checksum
from graphrec.io.features import BinaryFeatureWriter
from graphrec.io.images import ImageTooLarge, open_image
from graphrec.io.metadata import MetadataReader
from graphrec.models import LinearEncoder, MahalanobisModel
from graphrec.runs import RunWriter

runner = CliRunner()
DIM = 8
MEN = ["Clothing, Shoes & Jewelry", "Men", "Shoes"]


def asin(i: int) -> str:
    return f"B{i:09d}"


def record(i: int, n: int = 12, **extra) -> dict:
    """A well-formed 2014 record: product i, also bought with its two ring neighbours."""
    rec = {"asin": asin(i), "title": f"Shoe {i}", "price": 10.0 + i, "brand": "Acme", "categories": [MEN],
           "related": {"also_bought": [asin((i + 1) % n), asin((i + 2) % n)]}}
    rec.update(extra)
    return rec


def write_meta(path, lines, gz: bool = True):
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def good_lines(n: int = 12) -> list[str]:
    return [repr(record(i, n)) for i in range(n)]


def build(tmp_path, meta, *extra):
    """build-graph through the CLI; returns (result, out)."""
    out = tmp_path / "graph"
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(out), "-q", *extra])
    return result, out


def assert_clean_error(result, *needles, code=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert result.output.count("error:") == 1


# ----------------------------------------------------------------------------- metadata


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    whole = gzip.compress("".join(line + "\n" for line in good_lines(200)).encode())
    meta = tmp_path / "meta.json.gz"
    meta.write_bytes(whole[: len(whole) // 2])
    result, out = build(tmp_path, meta)
    assert_clean_error(result, "meta.json.gz", "damaged or truncated", code=1)
    assert not out.exists()
    assert not list(tmp_path.glob(".graph.building-*"))  # nothing half-built left behind


def test_bad_lines_are_counted_and_skipped_with_their_line_numbers(tmp_path):
    lines = good_lines(12)
    lines[2] = lines[2][: len(lines[2]) // 2]  # a line cut in half
    lines[4] = repr(["B000000004", "not", "a", "dict"])  # valid Python, not a dict
    lines[6] = repr({"title": "no asin here", "categories": [MEN]})  # a dict without asin
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta)
    assert result.exit_code == 0, result.output
    assert "line 3" in result.output and "line 5" in result.output and "line 7" in result.output
    assert "expected a dict" in result.output and "no 'asin'" in result.output
    assert "Traceback" not in result.output
    graph = load_graph(out)
    assert graph.manifest["dropped"]["bad_lines"] == 3
    assert graph.num_nodes == 9 and asin(2) not in graph.asin_to_index


def test_strict_turns_a_bad_line_into_an_error(tmp_path):
    lines = good_lines(5)
    lines[3] = "{'asin': 'B000000003', 'title': "
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta, "--strict")
    assert_clean_error(result, "line 4", "--strict", code=1)
    assert not out.exists()


@pytest.mark.parametrize("related", ["B000000001", ["B000000001", 7], {"also_bought": "B000000001"}, 42])
def test_related_of_the_wrong_type_keeps_the_product_and_counts_it(tmp_path, related):
    lines = good_lines(6)
    bad = record(3, 6)
    if isinstance(related, dict):
        bad["related"] = related
    else:
        bad["related"] = {"also_bought": related} if isinstance(related, list) else related
    lines[3] = repr(bad)
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta)
    assert result.exit_code == 0, result.output
    assert "line 4" in result.output and asin(3) in result.output and "ignored" in result.output
    graph = load_graph(out)
    assert asin(3) in graph.asin_to_index  # the product itself is fine
    assert graph.manifest["sources"]["metadata"]["bad_related"] == 1
    assert graph.manifest["dropped"]["bad_lines"] == 0


def test_non_utf8_bytes(tmp_path):
    lines = [line.encode() for line in good_lines(6)]
    lines[1] = repr(record(1, 6, title="Caf\udce9")).encode("utf-8", "surrogateescape").replace(b"\\udce9", b"\xe9")
    lines[2] = b"{'asin': 'B00000\xff\xfe02', 'title': 'bad asin bytes'}"
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta)
    assert result.exit_code == 0, result.output
    assert "line 3" in result.output and "not valid UTF-8" in result.output
    graph = load_graph(out)
    assert graph.manifest["dropped"]["bad_lines"] == 1  # the ASIN is unreadable: the line is skipped
    title = graph.products["title"].iloc[graph.index_of(asin(1))]
    assert title == "Caf\ufffd"  # a bad byte elsewhere becomes U+FFFD, the product stays


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"])
def test_empty_metadata_file(tmp_path, content):
    meta = tmp_path / "meta.json"
    meta.write_bytes(content)
    result, out = build(tmp_path, meta)
    assert_clean_error(result, "meta.json", "empty", code=1)
    assert not out.exists()


def test_empty_gzip_file(tmp_path):
    meta = tmp_path / "meta.json.gz"
    meta.write_bytes(gzip.compress(b""))
    result, _ = build(tmp_path, meta)
    assert_clean_error(result, "meta.json.gz", "empty", code=1)


def test_a_2014_line_inside_a_2018_file_is_read_by_its_keys(tmp_path):
    lines = [json.dumps({"asin": asin(i), "title": f"Shoe {i}", "category": MEN, "price": "$12.50",
                         "also_buy": [asin((i + 1) % 6)]}) for i in range(6)]
    lines[4] = repr(record(4, 6))  # 2014 literal: related.also_bought -> B5, B0
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta, "--format", "2018")
    assert result.exit_code == 0, result.output
    assert "line 5" in result.output and "2014 format" in result.output
    graph = load_graph(out)
    assert graph.manifest["sources"]["metadata"]["other_format_lines"] == 1
    assert graph.products["category"].iloc[graph.index_of(asin(4))] == "|".join(MEN)
    pairs = {tuple(sorted((graph.asins[a], graph.asins[b]))) for a, b in graph.edge_index("also_bought").T.tolist()}
    assert (asin(4), asin(5)) in pairs and (asin(0), asin(4)) in pairs


CRAFTED = [
    "__import__('os').system('touch {marker}')",
    "{{'asin': 'B000000099', 'title': __import__('os').system('touch {marker}')}}",
    "{{'asin': 'B000000099', 'title': (lambda: open('{marker}', 'w'))()}}",
    "[c for c in ().__class__.__base__.__subclasses__() if open('{marker}', 'w')]",
]


@pytest.mark.parametrize("position", ["first", "middle"])
@pytest.mark.parametrize("fmt", ["2014", "2018", "auto"])
@pytest.mark.parametrize("payload", CRAFTED)
def test_a_crafted_line_never_executes(tmp_path, payload, fmt, position):
    marker = tmp_path / "PWNED"
    crafted = payload.format(marker=marker)
    # prove the payload is live: evaluating it would create the marker
    probe = tmp_path / "PROBE"
    try:
        eval(payload.format(marker=probe))  # noqa: S307 - deliberately, in the test only
    except Exception:
        pass
    assert probe.exists()
    lines = good_lines(6)
    if fmt == "2018":
        lines = [json.dumps({"asin": asin(i), "title": "x", "also_buy": [asin((i + 1) % 6)]}) for i in range(6)]
    lines.insert(0 if position == "first" else 3, crafted)
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    result, out = build(tmp_path, meta, "--format", fmt)
    assert not marker.exists()
    assert "Traceback" not in result.output
    if position == "first" and fmt == "auto":
        assert_clean_error(result, "line 1", "cannot detect the metadata format", code=1)
    else:
        assert result.exit_code == 0, result.output
        assert load_graph(out).manifest["dropped"]["bad_lines"] == 1
    # the Python reader (no CLI) is just as safe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            list(MetadataReader(meta, format=None if fmt == "auto" else fmt))
        except DataError:
            pass
    assert not marker.exists()


# ----------------------------------------------------------------------------- features


def write_b(path, asins, values):
    with BinaryFeatureWriter(path, dim=values.shape[1]) as writer:
        writer.write(asins, values)
    return path


def features_for(n: int, dim: int = DIM) -> np.ndarray:
    return (np.arange(n * dim, dtype=np.float32).reshape(n, dim) % 7) + 1


@pytest.fixture
def meta12(tmp_path):
    return write_meta(tmp_path / "meta.json.gz", good_lines(12))


def test_features_of_the_wrong_record_size(tmp_path, meta12):
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], features_for(12, 16))
    result, out = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM))
    assert_clean_error(result, "f.b", "not a multiple of the record size", "--feature-dim 16", code=1)
    assert not out.exists()


def test_features_truncated_mid_record(tmp_path, meta12):
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], features_for(12))
    record = 10 + 4 * DIM
    b.write_bytes(b.read_bytes()[: 11 * record + 17])
    result, out = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM))
    assert_clean_error(result, "f.b", f"byte offset {11 * record}", "truncated", code=1)
    assert not out.exists()


def test_non_finite_values_drop_the_record_and_count_it(tmp_path, meta12):
    values = features_for(12)
    values[3, 2], values[5, 0], values[7, 7] = np.nan, np.inf, -np.inf
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], values)
    result, out = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM))
    assert result.exit_code == 0, result.output
    assert asin(3) in result.output and "NaN or infinite" in result.output
    graph = load_graph(out)
    assert graph.manifest["dropped"]["non_finite"] == 3
    assert graph.num_nodes == 9 and asin(5) not in graph.asin_to_index
    assert np.isfinite(np.asarray(graph.features, dtype=np.float32)).all()


def test_non_finite_with_strict_is_an_error(tmp_path, meta12):
    values = features_for(12)
    values[3, 2] = np.nan
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], values)
    result, _ = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM), "--strict")
    assert_clean_error(result, asin(3), "--strict", code=1)


def test_an_asin_with_non_ascii_bytes_is_dropped_and_counted(tmp_path, meta12):
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], features_for(12))
    raw = bytearray(b.read_bytes())
    record = 10 + 4 * DIM
    raw[4 * record + 3] = 0xE9  # B000000004 -> B00\xe9000004
    b.write_bytes(bytes(raw))
    result, out = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM))
    assert result.exit_code == 0, result.output
    assert f"byte offset {4 * record}" in result.output and "non-ASCII ASIN" in result.output
    graph = load_graph(out)
    assert graph.manifest["dropped"]["bad_asin"] == 1
    assert asin(4) not in graph.asin_to_index and graph.num_nodes == 11


def test_duplicate_feature_asins_keep_the_first_record(tmp_path, meta12):
    asins = [asin(i) for i in range(12)] + [asin(2), asin(9)]
    values = np.vstack([features_for(12), np.full((2, DIM), 99.0, dtype=np.float32)])
    b = write_b(tmp_path / "f.b", asins, values)
    result, out = build(tmp_path, meta12, "--features", str(b), "--feature-dim", str(DIM), "--dtype", "float32")
    assert result.exit_code == 0, result.output
    graph = load_graph(out)
    assert graph.manifest["dropped"]["duplicate_feature_asins"] == 2
    assert graph.num_nodes == 12
    np.testing.assert_array_equal(graph.features[graph.index_of(asin(2))], features_for(12)[2])


def graph_with_features(tmp_path, n: int = 12, dtype: str = "float32"):
    meta = write_meta(tmp_path / "meta.json.gz", good_lines(n))
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(n)], features_for(n))
    return build_graph(meta, tmp_path / "graph", b, feature_dim=DIM, dtype=dtype, quiet=True).path


@pytest.mark.parametrize("replacement, needle", [
    (lambda: np.zeros((5, DIM), dtype=np.float32), "has 5 rows"),
    (lambda: np.zeros((12, DIM + 3), dtype=np.float32), "columns"),
    (lambda: np.zeros(12 * DIM, dtype=np.float32), "shape"),
    (lambda: np.zeros((12, DIM), dtype=np.int64), "int64"),
    (lambda: np.array([{"x": 1}] * 12, dtype=object), "not a plain float feature matrix"),
])
def test_a_features_npy_of_the_wrong_shape_or_type(tmp_path, replacement, needle):
    graph_dir = graph_with_features(tmp_path)
    np.save(graph_dir / "features.npy", replacement(), allow_pickle=True)
    with pytest.raises(DataError, match="features.npy"):
        load_graph(graph_dir)
    result = runner.invoke(app, ["info", str(graph_dir)])
    assert_clean_error(result, "features.npy", needle, code=1)


# ----------------------------------------------------------------------------- images


def _png(path, image):
    image.save(path)
    return path


def test_images_bad_files_are_clear_errors(tmp_path):
    empty = tmp_path / "B000000001.jpg"
    empty.write_bytes(b"")
    html = tmp_path / "B000000002.jpg"
    html.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(good, quality=90)
    truncated = tmp_path / "B000000003.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path in (empty, html, truncated):
        with pytest.raises(DataError) as caught:
            open_image(path)
        assert str(path) in str(caught.value)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = _png(tmp_path / "bomb.png", Image.new("1", (9000, 8000)))  # 72 Mpx, a few kB on disk
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        open_image(bomb)
    # a declared size far beyond PIL's own limit is refused too
    header = bytearray(bomb.read_bytes())
    header[16:24] = struct.pack(">II", 100_000, 100_000)
    forged = tmp_path / "forged.png"
    forged.write_bytes(bytes(header))
    with pytest.raises(DataError):
        open_image(forged)


def test_cmyk_and_16_bit_images_become_rgb(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(cmyk)  # pure red in CMYK
    image = open_image(cmyk)
    assert image.mode == "RGB" and image.size == (32, 32)
    r, g, b = image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)).save(deep)
    assert Image.open(deep).mode.startswith("I")
    image = open_image(deep)
    assert image.mode == "RGB" and image.size == (30, 20)
    assert image.getpixel((5, 5)) == (156, 156, 156)  # 40000 / 256, grey


def test_extract_features_skips_and_counts_bad_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (40 * i, 90, 200)).save(folder / f"{asin(i)}.png")
    (folder / f"{asin(3)}.jpg").write_bytes(b"")
    (folder / f"{asin(4)}.jpg").write_text("<html><body>Access denied</body></html>")
    good = folder / f"{asin(0)}.png"
    (folder / f"{asin(5)}.png").write_bytes(good.read_bytes()[:60])
    Image.new("CMYK", (40, 40), (10, 200, 30, 0)).save(folder / f"{asin(6)}.jpg")
    Image.fromarray(np.full((40, 40), 30000, dtype=np.uint16)).save(folder / f"{asin(7)}.png")
    _png(folder / f"{asin(8)}.png", Image.new("1", (9000, 8000)))
    out = tmp_path / "features.b"
    result = runner.invoke(app, ["extract-features", "--images", str(folder), "-o", str(out), "--weights", "random",
                                 "--workers", "0", "--batch-size", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for i in (3, 4, 5, 8):
        assert asin(i) in result.output  # each skipped image is named
    sidecar = json.loads((tmp_path / "features.b.json").read_text())
    assert sidecar["num_images"] == 5  # 3 plain + CMYK + 16-bit
    assert sum(sidecar["skipped"].values()) == 4
    assert set(sidecar["skipped_images"]) == {asin(3), asin(4), asin(5), asin(8)}


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def run_setup(tmp_path):
    """A graph of 12 products (2 categories) with 8-d features and a Mahalanobis run on it."""
    lines = []
    for i in range(12):
        rec = record(i, 12)
        if i % 2:
            rec["categories"] = [["Clothing, Shoes & Jewelry", "Women"]]
        lines.append(repr(rec))
    meta = write_meta(tmp_path / "meta.json.gz", lines)
    b = write_b(tmp_path / "f.b", [asin(i) for i in range(12)], features_for(12))
    graph_dir = build_graph(meta, tmp_path / "graph", b, feature_dim=DIM, quiet=True).path
    model = MahalanobisModel(LinearEncoder(feature_dim=DIM, k=3, seed=1))
    writer = RunWriter(tmp_path / "run")
    writer.write_config({"decoder": model.name, "k": 3, "relation": "also_bought", "seed": 1, "graph": str(graph_dir),
                         "graph_checksum": manifest_checksum(graph_dir), "model": model.hparams()})
    writer.write_model(model)
    return meta, b, graph_dir, writer.commit()


def test_unknown_asin(run_setup):
    *_, run = run_setup
    result = runner.invoke(app, ["neighbours", "B000000O01", "--run", str(run)])
    assert_clean_error(result, "B000000O01", "not in the graph", "B000000001", code=2)


def test_k_larger_than_the_feature_dimension(run_setup, tmp_path):
    _, _, graph_dir, _ = run_setup
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--k", "50", "-o", str(tmp_path / "r"), "-q"])
    assert_clean_error(result, "K = 50", f"feature dimension {DIM}", code=2)
    assert not (tmp_path / "r").exists()


def test_a_relation_the_graph_lacks(run_setup, tmp_path):
    _, _, graph_dir, _ = run_setup
    result = runner.invoke(app, ["train", "--graph", str(graph_dir), "--relation", "also_viewed", "--k", "2", "-o", str(tmp_path / "r"), "-q"])
    assert_clean_error(result, "also_viewed", "also_bought", code=2)
    assert not (tmp_path / "r").exists()


def test_a_category_that_matches_nothing(run_setup, tmp_path):
    meta, _, _, run = run_setup
    result = runner.invoke(app, ["neighbours", asin(0), "--run", str(run), "--category", "Books|Fiction"])
    assert_clean_error(result, "Books|Fiction", code=2)
    result, out = build(tmp_path, meta, "--category", "Books|Fiction", "--force")
    assert_clean_error(result, "Books|Fiction", "Clothing, Shoes & Jewelry", code=1)


def test_a_run_dir_from_another_graph(run_setup, tmp_path):
    meta, b, graph_dir, run = run_setup
    # the graph the run was trained on is rebuilt differently in the same place
    build_graph(meta, graph_dir, b, feature_dim=DIM, category="Clothing, Shoes & Jewelry|Men", force=True, quiet=True)
    for args in (["neighbours", asin(0), "--run", str(run)], ["evaluate", str(run)]):
        result = runner.invoke(app, args)
        assert_clean_error(result, "changed since the run", "train the run again", code=1)


def test_a_graph_dir_of_an_older_format_version(run_setup):
    _, _, graph_dir, run = run_setup
    manifest = json.loads((graph_dir / "manifest.json").read_text())
    manifest["format_version"] = 0
    (graph_dir / "manifest.json").write_text(json.dumps(manifest))
    for args in (["info", str(graph_dir)], ["train", "--graph", str(graph_dir), "-o", str(graph_dir.parent / "r2")]):
        result = runner.invoke(app, args)
        assert_clean_error(result, "format version 0", "build-graph --force", code=1)


def test_debug_shows_the_traceback(run_setup):
    *_, run = run_setup
    result = runner.invoke(app, ["--debug", "neighbours", "B000000O01", "--run", str(run)])
    assert result.exit_code != 0
    assert result.exception is not None and "not in the graph" in str(result.exception)


@pytest.mark.parametrize("damage", ["config model", "metrics"])
def test_a_damaged_run_dir(run_setup, damage):
    *_, run = run_setup
    if damage == "config model":
        config = json.loads((run / "config.json").read_text())
        config["model"] = {"feature_dim": DIM, "bogus": 1}
        (run / "config.json").write_text(json.dumps(config))
        needle = "config.json"
    else:
        (run / "metrics.json").write_text('{"test": {"accuracy": 0.9')
        needle = "metrics.json"
    for args in (["neighbours", asin(0), "--run", str(run)], ["evaluate", str(run)]):
        result = runner.invoke(app, args)
        assert_clean_error(result, needle, "train the run again", code=1)
