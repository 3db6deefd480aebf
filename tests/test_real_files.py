"""Files as people have them (issue 19) and the storage side of robustness round two (issue 18):
byte-order marks, padded ids, compression by content, extreme feature rows, unreadable
fields, FIFOs and other non-regular files, symlink loops, OS errors on output paths."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import signal
import sys
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import product_2014
from graphrec import fs
from graphrec.cli import app
from graphrec.errors import DataError
from graphrec.graph import build_graph, load_graph
from graphrec.graph.features import NpyRowWriter
from graphrec.graph.outliers import scaling_warning
from graphrec.io.images import open_image, scan_images
from graphrec.io.metadata import MetadataReader, detect_format, parse_price
from graphrec.io.textfiles import open_text_lines

A, B, C, D = "A000000001", "B000000002", "C000000003", "D000000004"
runner = CliRunner()


@contextlib.contextmanager
def must_not_block(seconds: int = 20):
    """Fail instead of hanging forever when the block blocks (a FIFO opened for reading)."""
    def interrupt(*_):
        raise AssertionError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def lines_2014(*products) -> bytes:
    return "".join(repr(p) + "\n" for p in products).encode()


def lines_2018(*asins) -> bytes:
    return "".join(json.dumps({"asin": a, "title": a, "also_buy": [b for b in asins if b != a], "category": ["X"]}) + "\n"
                   for a in asins).encode()


# ------------------------------------------------------------------ byte-order marks


@pytest.mark.parametrize("fmt", ["2014", "2018"])
@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress])
def test_a_bom_is_skipped_and_the_first_record_kept(tmp_path, fmt, compress):
    body = lines_2014(product_2014(A, also_bought=[B]), product_2014(B)) if fmt == "2014" else lines_2018(A, B)
    path = tmp_path / "meta.json"
    path.write_bytes(compress(fs_bom() + body))
    assert detect_format(path) == fmt
    reader = MetadataReader(path)
    products = list(reader)
    assert [p.asin for p in products] == [A, B] and reader.bad_lines == 0
    assert [text for _, text in open_text_lines(path)][0].startswith(("{'asin'", '{"asin"'))


def fs_bom() -> bytes:
    return b"\xef\xbb\xbf"


def test_a_bom_in_an_image_manifest_is_skipped(tmp_path):
    from graphrec.extract import read_manifest

    manifest = tmp_path / "images.csv"
    manifest.write_bytes(fs_bom() + f"asin,path\n {A} ,a.png\n{B},b.png\n".encode())
    items, skipped, problems = read_manifest(manifest)
    assert [item.asin for item in items] == [A, B] and not skipped and not problems


# ------------------------------------------------------------------ ids normalised once


def test_padded_asins_in_related_lists_are_the_products_they_name(tmp_path):
    path = tmp_path / "meta.json"
    path.write_bytes(lines_2014(product_2014(f" {A} ", also_bought=[f" {B}", f"{C}\t", "\ufeff" + D, "  "]),
                                product_2014(B), product_2014(C), product_2014(D)))
    result = build_graph(path, tmp_path / "g", quiet=True)
    assert result.manifest["dropped"]["dangling"]["also_bought"] == 0
    graph = load_graph(result.path)
    assert graph.asins.tolist() == [A, B, C, D] and graph.edge_index("also_bought").shape[1] == 3


# ------------------------------------------------------------------ compression by content


@pytest.mark.parametrize("kind, compress", [("bzip2", bz2.compress), ("xz", lzma.compress), ("plain", lambda b: b)])
def test_compression_is_read_from_the_content_not_the_name(tmp_path, kind, compress):
    path = tmp_path / "meta.json.gz"  # whatever the name says
    path.write_bytes(compress(lines_2014(product_2014(A, also_bought=[B]), product_2014(B))))
    assert [p.asin for p in MetadataReader(path)] == [A, B]


def test_zstd_is_read_with_the_package_and_named_without_it(tmp_path, monkeypatch):
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "meta.json.gz"
    path.write_bytes(zstandard.ZstdCompressor().compress(lines_2014(product_2014(A), product_2014(B))))
    assert [p.asin for p in MetadataReader(path)] == [A, B]
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    with pytest.raises(DataError, match="is zstd-compressed and the zstandard package is not installed"):
        MetadataReader(path)


def test_damaged_files_name_their_real_compression(tmp_path):
    whole = bz2.compress(lines_2014(*[product_2014(f"A{i:09d}", also_bought=[B] * 30) for i in range(300)]))
    cut = tmp_path / "meta.json.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="bzip2-compressed file is damaged or truncated"):
        list(MetadataReader(cut, format="2014"))
    archive = tmp_path / "meta.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("meta.json", lines_2014(product_2014(A)))
    with pytest.raises(DataError, match="is a zip archive"):
        MetadataReader(archive)


# ------------------------------------------------------------------ unreadable fields, mixed lists


def test_a_price_too_large_for_a_float_is_an_unreadable_field_and_the_record_is_kept(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"asin": "%s", "title": "t", "price": %s, "also_buy": ["%s"]}\n{"asin": "%s"}\n' % (A, "9" * 400, B, B))
    reader = MetadataReader(path)
    products = list(reader)
    assert [p.asin for p in products] == [A, B] and np.isnan(products[0].price) and products[0].title == "t"
    assert reader.bad_fields == 1 and reader.bad_lines == 0 and "price" in reader.messages[0]
    result = build_graph(path, tmp_path / "g", quiet=True)
    assert result.manifest["sources"]["metadata"]["bad_fields"] == 1 and result.manifest["num_nodes"] == 2
    assert np.isnan(parse_price(10**400)) and parse_price("$1,299.00") == 1299.0


def test_a_related_list_mixing_asins_with_other_values_keeps_the_asins_and_says_so(tmp_path):
    path = tmp_path / "meta.json"
    path.write_bytes(lines_2014(product_2014(A, also_bought=[B, 7, None]), product_2014(B)))
    result = build_graph(path, tmp_path / "g", quiet=True)
    assert load_graph(result.path).edge_index("also_bought").shape[1] == 1
    message = " ".join(result.warnings)
    assert "mixes ASINs with 2 other values" in message and "ASINs are kept as edges" in message


# ------------------------------------------------------------------ extreme feature rows


@pytest.fixture
def extreme_catalogue(tmp_path, write_meta, write_features):
    asins = [f"A{i:09d}" for i in range(40)]
    meta = write_meta([product_2014(a, also_bought=[asins[(i + 1) % 40]]) for i, a in enumerate(asins)])
    values = np.random.default_rng(0).random((40, 8)).astype(np.float32) * 5
    values[7, 3] = 1e30
    return asins, meta, write_features(asins, values, dim=8)


def test_extreme_rows_are_counted_reported_and_dropped(tmp_path, extreme_catalogue):
    asins, meta, features = extreme_catalogue
    result = build_graph(meta, tmp_path / "g", features, feature_dim=8, dtype="float32", quiet=True)
    assert result.manifest["dropped"]["extreme_values"] == 1
    assert result.manifest["features"]["extreme_rows"]["count"] == 1
    assert any("far beyond the rest" in w and "dropped" in w for w in result.warnings)
    graph = load_graph(result.path)
    assert asins[7] not in graph.asin_to_index and graph.num_nodes == 39
    assert float(np.abs(graph.features).max()) <= 5.0
    values = np.asarray(graph.features)
    assert np.array_equal(values[7], np.asarray(graph.features)[graph.index_of(asins[8])])  # rows moved up in order
    assert scaling_warning(graph.features) is None


def test_keep_extreme_keeps_them_and_train_is_told_its_scaling_is_dominated(tmp_path, extreme_catalogue):
    asins, meta, features = extreme_catalogue
    result = build_graph(meta, tmp_path / "g", features, feature_dim=8, dtype="float32", keep_extreme=True, quiet=True)
    assert result.manifest["dropped"]["extreme_values"] == 0 and result.manifest["options"]["keep_extreme"]
    graph = load_graph(result.path)
    assert graph.num_nodes == 40
    warning = scaling_warning(graph.features)
    assert warning and "dominate" in warning and "--keep-extreme" in warning
    with pytest.raises(DataError, match="float16 range"):  # kept, it cannot be stored in float16
        build_graph(meta, tmp_path / "g16", features, feature_dim=8, keep_extreme=True, quiet=True)
    assert build_graph(meta, tmp_path / "d16", features, feature_dim=8, quiet=True).manifest["num_nodes"] == 39


@pytest.mark.parametrize("drop", [[], [0], [9], [0, 1, 2], [3, 5, 6, 9], list(range(10))])
def test_npy_row_writer_drops_rows_in_place(tmp_path, drop):
    rows = np.arange(30, dtype=np.float16).reshape(10, 3)
    writer = NpyRowWriter(tmp_path / "x.npy", capacity=10, dim=3, dtype=np.float16)
    writer.write(rows[:4])
    writer.write(rows[4:])
    writer.drop(np.array(drop, dtype=np.int64), block_bytes=12)
    writer.close()
    assert np.array_equal(np.load(tmp_path / "x.npy"), np.delete(rows, drop, axis=0))


# ------------------------------------------------------------------ non-regular files, links


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / f"{A}.png"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_by_path_without_blocking(tmp_path, fifo):
    with must_not_block():
        with pytest.raises(DataError, match=f"{fifo}.*FIFO"):
            open_image(fifo)
        meta = tmp_path / "meta.fifo"
        os.mkfifo(meta)
        result = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(tmp_path / "g")])
        assert result.exit_code == 1 and "meta.fifo" in result.output and "Traceback" not in result.output
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"asin,path\n{A},{fifo.name}\n")
        from graphrec.extract import read_manifest

        items, _, _ = read_manifest(manifest)
        assert items and items[0].path == fifo  # the row is listed; opening it is refused per image (skipped)
    from graphrec.datasets.synthetic import draw_product_image

    draw_product_image(0, True, 1, 0.3, 0.4, 0, np.zeros(3), size=40).save(tmp_path / f"{B}.png")
    manifest.write_text(f"asin,path\n{A},{fifo.name}\n{B},{B}.png\n")
    with must_not_block(300):
        result = runner.invoke(app, ["extract-features", "--manifest", str(manifest), "-o", str(tmp_path / "f.b"),
                                     "--weights", "random", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 images x 4096" in result.output and f"{fifo}" in result.output and "FIFO" in result.output


def test_links_that_lead_nowhere_and_non_files_in_an_images_folder_are_counted(tmp_path, fifo):
    (tmp_path / f"{B}.png").symlink_to(tmp_path / f"{C}.png")
    (tmp_path / f"{C}.png").symlink_to(tmp_path / f"{B}.png")  # a loop
    (tmp_path / f"{D}.png").symlink_to(tmp_path / "missing.png")
    found, skipped, problems = scan_images(tmp_path)
    assert found == {} and skipped == {"broken_link": 3, "not_a_file": 1}
    assert any("loop" in p and f"{B}.png" in p for p in problems)


def test_a_graph_built_with_features_says_when_features_npy_is_missing(tmp_path, small_catalogue):
    meta, features = small_catalogue
    graph = build_graph(meta, tmp_path / "g", features, feature_dim=8, quiet=True).path
    (graph / "features.npy").unlink()
    with pytest.raises(DataError, match="features.npy is missing, but .* was built with features"):
        load_graph(graph)


# ------------------------------------------------------------------ OS errors on outputs


def test_an_output_under_a_regular_file_is_one_sentence(tmp_path, small_catalogue):
    meta, features = small_catalogue
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["build-graph", "--meta", str(meta), "-o", str(blocker / "graph"), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot use {blocker}" in result.output and "regular file" in result.output


def test_an_atomic_write_onto_a_directory_names_the_directory(tmp_path):
    target = tmp_path / "picture.png"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as error:
        fs.write_bytes_atomic(target, b"png")
    assert fs.os_error_message(error.value) == f"cannot use {target}: it is a directory; name a file instead."
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(OSError) as error:
        fs.write_bytes_atomic(blocked / "x.png", b"png")
    assert str(blocked / "x.png") in fs.os_error_message(error.value)
