import pytest
from PIL import Image

from graphrec.errors import DataError
from graphrec.io.images import ImageTooLarge, open_image


def test_modes_become_rgb(tmp_path):
    gray = tmp_path / "g.png"
    Image.new("L", (10, 8), 100).save(gray)
    rgba = tmp_path / "a.png"
    Image.new("RGBA", (10, 8), (255, 0, 0, 0)).save(rgba)  # fully transparent red
    palette = tmp_path / "p.png"
    Image.new("RGB", (6, 6), (0, 0, 255)).convert("P").save(palette)
    for path in (gray, rgba, palette):
        image = open_image(path)
        assert image.mode == "RGB"
    assert open_image(gray).getpixel((0, 0)) == (100, 100, 100)
    assert open_image(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparency flattened onto white
    assert open_image(palette).getpixel((0, 0)) == (0, 0, 255)


def test_corrupt_truncated_and_missing_files_name_the_path(tmp_path):
    junk = tmp_path / "B000000001.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="B000000001.jpg"):
        open_image(junk)
    good = tmp_path / "full.jpg"
    Image.new("RGB", (64, 64), (10, 200, 30)).save(good, quality=95)
    cut = tmp_path / "B000000002.jpg"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="B000000002.jpg"):
        open_image(cut)
    with pytest.raises(DataError, match="does not exist"):
        open_image(tmp_path / "nope.png")


def test_decompression_bomb_refused(tmp_path):
    big = tmp_path / "big.png"
    Image.new("1", (3000, 3000)).save(big)
    with pytest.raises(ImageTooLarge, match="big.png"):
        open_image(big, max_pixels=1_000_000)
    assert open_image(big).size == (3000, 3000)
