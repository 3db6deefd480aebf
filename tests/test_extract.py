import json
import warnings

import numpy as np
import pytest

from graphrec.datasets.synthetic import draw_product_image
from graphrec.errors import DataError, UsageError
from graphrec.extract import extract_features, list_images, read_manifest
from graphrec.io.features import record_dtype
from graphrec.vision import Fc7Extractor, RandomWeightsWarning

ASINS = ["B000000001", "B000000002", "B000000003", "B000000004", "B000000005"]


@pytest.fixture(scope="module")
def extractor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return Fc7Extractor("random", seed=0)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    jitter = np.zeros(3)
    for k, asin in enumerate(ASINS):
        picture = draw_product_image(k % 5, bool(k % 2), k % 3, k / 5, 0.4, k % 3, jitter, size=48)
        picture.save(folder / f"{asin}.{['png', 'JPG', 'jpeg', 'webp', 'png'][k]}")
    (folder / "B00000000X.jpg").write_bytes(b"\xff\xd8\xff garbage, not a jpeg")  # corrupt
    (folder / "notes.txt").write_text("ignored")
    (folder / "this-name-is-too-long.png").write_bytes((folder / "B000000001.png").read_bytes())
    return folder


def _read(path):
    records = np.fromfile(path, dtype=record_dtype(4096))
    return [a.decode().strip() for a in records["asin"]], records["x"]


def test_listing_by_asin(images):
    items, skipped, problems = list_images(images)
    assert [i.asin for i in items] == ASINS + ["B00000000X"]
    assert skipped == {"bad_name": 1} and "this-name-is-too-long.png" in problems[0]


def test_extracts_every_readable_image_and_counts_the_corrupt_one(images, tmp_path, extractor):
    out = tmp_path / "features.b"
    result = extract_features(images, out, extractor=extractor, batch_size=2, workers=1, quiet=True)
    asins, x = _read(out)
    assert asins == ASINS and x.shape == (5, 4096) and (x >= 0).all()
    assert result.skipped == {"bad_name": 1, "unreadable": 1}
    assert any("B00000000X.jpg" in p for p in result.problems)
    sidecar = json.loads((tmp_path / "features.b.json").read_text())
    assert sidecar == {"extractor": extractor.spec, "images_dir": str(images.resolve()), "image_manifest": None,
                       "num_images": 5, "skipped": {"bad_name": 1, "unreadable": 1},
                       "skipped_images": {"B00000000X": "unreadable"}}
    assert not (tmp_path / "features.b.parts").exists()
    # same image -> same vector as extracting it directly
    np.testing.assert_allclose(x[0], extractor.extract_paths([images / "B000000001.png"])[0], rtol=1e-5, atol=1e-7)
    again = extract_features(images, out, extractor=extractor, workers=0, quiet=True)
    assert again.up_to_date and again.extracted == 0


def test_resume_after_interruption_loses_nothing(images, tmp_path, extractor):
    whole = tmp_path / "whole.b"
    extract_features(images, whole, extractor=extractor, batch_size=2, workers=0, quiet=True)
    out = tmp_path / "resumed.b"
    with pytest.raises(KeyboardInterrupt):
        extract_features(images, out, extractor=extractor, batch_size=2, chunk_images=2, workers=0, quiet=True,
                         stop_after_chunks=1)
    assert not out.exists() and len(list((tmp_path / "resumed.b.parts").glob("part-*.json"))) == 1
    result = extract_features(images, out, extractor=extractor, batch_size=2, chunk_images=2, workers=0, quiet=True)
    assert result.resumed == 2 and result.extracted == 3
    assert _read(out)[0] == _read(whole)[0]
    np.testing.assert_array_equal(_read(out)[1], _read(whole)[1])
    assert json.loads((tmp_path / "resumed.b.json").read_text())["skipped"] == {"bad_name": 1, "unreadable": 1}


def test_interrupted_run_with_other_weights_is_not_mixed(images, tmp_path, extractor):
    out = tmp_path / "f.b"
    with pytest.raises(KeyboardInterrupt):
        extract_features(images, out, extractor=extractor, chunk_images=1, batch_size=1, workers=0, quiet=True,
                         stop_after_chunks=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        other = Fc7Extractor("random", seed=9)
    with pytest.raises(UsageError, match="delete"):
        extract_features(images, out, extractor=other, workers=0, quiet=True)


def test_manifest(images, tmp_path, extractor):
    manifest = tmp_path / "list.csv"
    manifest.write_text("asin,path\nB000000003,images/B000000003.jpeg\nB000000001,images/B000000001.png\n"
                        ",missing-asin.png\nB000000009,images/none.png\n")
    items, skipped, _ = read_manifest(manifest)
    assert [i.asin for i in items] == ["B000000003", "B000000001", "B000000009"] and skipped == {"bad_row": 1}
    result = extract_features(manifest=manifest, out=tmp_path / "m.b", extractor=extractor, workers=0, quiet=True)
    assert _read(tmp_path / "m.b")[0] == ["B000000003", "B000000001"]
    assert result.skipped == {"bad_row": 1, "unreadable": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,file\n1,2\n")
    with pytest.raises(DataError, match="line 1"):
        read_manifest(bad)
    with pytest.raises(UsageError, match="not both"):
        extract_features(images, tmp_path / "x.b", manifest=manifest, extractor=extractor)
