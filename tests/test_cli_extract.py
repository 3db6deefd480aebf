import json

import numpy as np
from typer.testing import CliRunner

import graphrec.extract
from graphrec.cli import app
from graphrec.datasets.synthetic import draw_product_image


def _images(folder, n=3):
    folder.mkdir()
    for k in range(n):
        draw_product_image(k, k % 2 == 0, 1, k / n, 0.4, k % 3, np.zeros(3), size=40).save(folder / f"B00000000{k}.png")
    return folder


def test_extract_features_command(tmp_path):
    images = _images(tmp_path / "imgs")
    (images / "B00000000Z.png").write_bytes(b"broken")
    out = tmp_path / "f.b"
    result = CliRunner().invoke(app, ["extract-features", "--images", str(images), "-o", str(out), "--weights", "random",
                                      "--workers", "0", "--batch-size", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 images x 4096" in result.output and "1 unreadable" in result.output
    assert "NOT ImageNet" in result.output and "B00000000Z.png" in result.output
    assert out.stat().st_size == 3 * (10 + 4 * 4096)
    assert json.loads((tmp_path / "f.b.json").read_text())["extractor"]["weights"] == "random"
    again = CliRunner().invoke(app, ["extract-features", "--images", str(images), "-o", str(out), "--weights", "random",
                                     "--workers", "0", "--quiet"])
    assert again.exit_code == 0 and "up to date" in again.output


def test_defaults_to_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(graphrec.extract, "SAMPLE_IMAGES", _images(tmp_path / "sample", n=2))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["extract-features", "--weights", "random", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "graphrec-sample" / "image_features.b").stat().st_size == 2 * (10 + 4 * 4096)


def test_bad_input_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["extract-features", "--images", str(tmp_path / "none"), "--weights", "random"])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["extract-features", "--images", str(tmp_path), "--weights", "random"])
    assert result.exit_code == 2 and "no images found" in result.output
    images = _images(tmp_path / "imgs", n=1)
    result = CliRunner().invoke(app, ["extract-features", "--images", str(images), "--weights", str(tmp_path / "w.pt")])
    assert result.exit_code == 2 and "no such file" in result.output
