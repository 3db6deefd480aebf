"""The recommendation picture: grid size, real images, placeholders, the images-folder guard."""

from __future__ import annotations

import numpy as np
from PIL import Image

from graphrec.picture import CAPTION, MAX_COLUMNS, PAD, TILE, Tile, render_grid, safe_image_path


def _png(path, colour):
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def test_grid_dimensions_and_content(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    red = _png(images / "A1.png", (255, 0, 0))
    blue = _png(images / "A2.png", (0, 0, 255))
    tiles = [Tile(red, "A1", "A red shirt", label="query"), Tile(blue, "A2", "A blue scarf with a very long title indeed", 0.91)]
    tiles += [Tile(None, f"B{i}", None, 0.5) for i in range(6)]  # missing images: placeholders
    out = render_grid(tiles, tmp_path / "out" / "grid.png", images_dir=images)
    picture = np.asarray(Image.open(out).convert("RGB"))
    cell_w, cell_h = TILE + 2 * PAD, TILE + CAPTION + 2 * PAD
    assert picture.shape == (2 * cell_h, MAX_COLUMNS * cell_w, 3)  # 8 tiles -> 6 columns, 2 rows
    centre = lambda n: picture[(n // MAX_COLUMNS) * cell_h + PAD + TILE // 2, (n % MAX_COLUMNS) * cell_w + PAD + TILE // 2]
    assert tuple(centre(0)) == (255, 0, 0) and tuple(centre(1)) == (0, 0, 255)
    placeholder = picture[cell_h + PAD + 20, PAD + 60]  # a placeholder tile, away from its text and cross
    assert tuple(placeholder) == (225, 225, 225)
    assert out.stat().st_size > 0 and not list(out.parent.glob(".*tmp"))


def test_paths_outside_the_images_dir_become_placeholders(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    outside = _png(tmp_path / "secret.png", (0, 255, 0))
    assert safe_image_path(outside, images) is None
    assert safe_image_path(images / ".." / "secret.png", images) is None
    assert safe_image_path(None, images) is None and safe_image_path(float("nan"), images) is None
    inside = _png(images / "X.png", (1, 2, 3))
    assert safe_image_path(inside, images) == inside.resolve()
    out = render_grid([Tile(outside, "S1", "x", label="query")], tmp_path / "one.png", images_dir=images)
    picture = np.asarray(Image.open(out).convert("RGB"))
    assert picture.shape == (TILE + CAPTION + 2 * PAD, TILE + 2 * PAD, 3)
    assert not (picture == (0, 255, 0)).all(axis=2).any()  # the outside image was never drawn


def test_caption_is_short():
    lines = Tile(None, "B000X", "word " * 40, 0.12345).caption(20)
    assert lines[0] == "B000X" and len(lines[1]) <= 20 and lines[2] == "p = 0.123"


def test_missing_title_is_captioned_plainly_not_as_nan():
    # pandas hands a missing title over as NaN, not None
    assert Tile(None, "B1", float("nan"), 0.5).caption()[1] == "(no title)"
    assert Tile(None, "B1", None, 0.5).caption()[1] == "(no title)"


def test_titles_are_shortened_from_the_middle_keeping_the_garment_type():
    from graphrec.picture import shorten_middle

    assert shorten_middle("Boelmi Women's Classic Everyday Lime Tote", 25) == "Boelmi...Lime Tote"
    assert shorten_middle("Nisu Women's Leather Shoulder Bag", 25) == "Nisu...Shoulder Bag"
    assert shorten_middle("Short title", 25) == "Short title"
    for text in ("Supercalifragilisticexpialidocious shirt", "x" * 60, "word " * 40):
        assert len(shorten_middle(text.strip(), 20)) <= 20
    assert Tile(None, "B1", "Miel Women's Everyday Casual Blue Shirt", 0.5).caption(25)[1].endswith("Blue Shirt")


def test_headings_add_a_line_above_their_rows_and_only_query_tiles_are_framed(tmp_path):
    from graphrec.picture import HEADING, QUERY_FRAME

    tiles = [Tile(None, f"A{i}", "t", 0.5, label="p = 0.500", framed=False) for i in range(4)]
    out = render_grid(tiles, tmp_path / "h.png", columns=2, headings={0: "edges", 1: "non-edges"})
    picture = np.asarray(Image.open(out).convert("RGB"))
    cell_h = TILE + CAPTION + 2 * PAD
    assert picture.shape[0] == 2 * cell_h + 2 * HEADING
    assert not (picture == QUERY_FRAME).all(axis=2).any()  # labelled, but not framed
    heading_band = picture[:HEADING, :]
    assert (heading_band.sum(axis=2) < 200).any()  # the heading's dark text is drawn there
    framed = np.asarray(Image.open(render_grid([Tile(None, "Q", "t", label="query")], tmp_path / "q.png")).convert("RGB"))
    assert (framed == QUERY_FRAME).all(axis=2).any()


def test_roc_points_run_from_the_origin_to_one_one():
    import torch

    from graphrec.metrics import roc_points

    fpr, tpr = roc_points(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1, 0, 1, 0]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.trapezoid(tpr, fpr) == 0.75  # the same 0.75 as pair_metrics' ROC-AUC


def test_category_labels_use_the_first_level_where_products_differ():
    from graphrec.plots import category_labels

    paths = ["Clothing|Women|Tops", "Clothing|Men|Shorts", None, "Clothing|Women|Bags"]
    assert category_labels(paths) == (["Women", "Men", "(none)", "Women"], 1)
    assert category_labels(["Shoes|A", "Bags|B"]) == (["Shoes", "Bags"], 0)
    assert category_labels(["Shoes", "Shoes"]) == (["Shoes", "Shoes"], 0)
