"""A picture of a recommendation: the query image, then the recommended products, in a grid.

Every tile is captioned with the ASIN, a short title and the model's probability. A
product whose image is unknown, unreadable or outside the recorded images folder gets a
plain placeholder tile, so one missing file never spoils the picture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from graphrec.fs import atomic_write

__all__ = ["Tile", "render_grid", "safe_image_path"]

TILE = 180  # pixels, square image area of one tile
CAPTION = 54  # pixels of caption under each image
PAD = 8
MAX_COLUMNS = 6
BACKGROUND = (255, 255, 255)
PLACEHOLDER = (225, 225, 225)
QUERY_FRAME = (200, 60, 40)
HEADING = 24  # height of a heading line above a row


@dataclass
class Tile:
    """One cell of the grid: an image (or None for a placeholder) and its caption lines."""

    image_path: str | os.PathLike | None
    asin: str
    title: str | None = None
    probability: float | None = None
    label: str | None = None  # e.g. "query" instead of a probability
    framed: bool | None = None  # drawn in a frame; default: when labelled "query"

    def caption(self, width_chars: int = 26) -> list[str]:
        title = " ".join(self.title.split()) if isinstance(self.title, str) and self.title.strip() else "(no title)"  # None or NaN: none
        last = self.label if self.label else ("" if self.probability is None else f"p = {self.probability:.3f}")
        return [self.asin, shorten_middle(title, width_chars), last]

    @property
    def is_framed(self) -> bool:
        return self.label == "query" if self.framed is None else self.framed


def shorten_middle(text: str, width: int, placeholder: str = "...") -> str:
    """``text`` cut to ``width`` characters from the middle, whole words where they fit, so
    that both the brand at the start and the garment type at the end stay visible:
    ``"Boelmi Women's Classic Everyday Lime Tote"`` -> ``"Boelmi Women's...Lime Tote"``."""
    if len(text) <= width:
        return text
    room = max(width - len(placeholder), 2)
    words = text.split()
    tail: list[str] = []
    while len(words) > len(tail) + 1 and len(" ".join([words[-len(tail) - 1], *tail])) <= room * 0.6:
        tail.insert(0, words[-len(tail) - 1])
    tail_text = " ".join(tail) or text[len(text) - room // 2:]
    head: list[str] = []
    for word in words[: len(words) - len(tail)]:
        if len(" ".join([*head, word])) > room - len(tail_text):
            break
        head.append(word)
    head_text = " ".join(head) or text[: room - len(tail_text)]
    return head_text + placeholder + tail_text


def safe_image_path(path: str | os.PathLike | None, images_dir: str | os.PathLike | None) -> Path | None:
    """``path`` if it is a file inside ``images_dir`` (when one is recorded), else None.

    The product table only ever holds paths inside the images folder given at build time;
    this check keeps a tampered table from making the picture read files elsewhere.
    """
    if path is None or (isinstance(path, float)) or str(path) in ("", "nan", "None"):
        return None
    candidate = Path(path)
    if images_dir is not None:
        root = Path(images_dir).resolve()
        candidate = (root / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
        if not candidate.is_relative_to(root):
            return None
    return candidate if candidate.is_file() else None


def _load(path: Path | None, size: int) -> Image.Image | None:
    if path is None:
        return None
    try:
        try:
            from graphrec.io.images import open_image
        except ImportError:  # pragma: no cover - io.images ships with extract-features
            open_image = lambda p: Image.open(p).convert("RGB")  # noqa: E731
        image = open_image(path)
    except Exception:  # an unreadable image becomes a placeholder tile, never a crash
        return None
    return ImageOps.contain(image, (size, size))  # fit the tile, up or down, keeping the aspect ratio


def _placeholder(size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), PLACEHOLDER)
    draw = ImageDraw.Draw(tile)
    draw.line([(0, 0), (size - 1, size - 1)], fill=(200, 200, 200), width=2)
    draw.line([(0, size - 1), (size - 1, 0)], fill=(200, 200, 200), width=2)
    text = "no image"
    font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    draw.rectangle([(size - w) // 2 - 4, (size - h) // 2 - 4, (size + w) // 2 + 4, (size + h) // 2 + 4], fill=PLACEHOLDER)
    draw.text(((size - w) // 2, (size - h) // 2), text, fill=(110, 110, 110), font=font)
    return tile


def render_grid(
    tiles: Sequence[Tile | None],
    out: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    columns: int | None = None,
    tile_size: int = TILE,
    trusted: set[str] | None = None,
    headings: Mapping[int, str] | None = None,
) -> Path:
    """Draw ``tiles`` (the query first) in a grid and write a PNG to ``out`` atomically.

    Returns the output path. The picture is ``columns`` tiles wide (at most
    :data:`MAX_COLUMNS` by default) and as many rows as needed; a None tile leaves its
    cell empty; ``headings`` maps a row number to a line of text drawn above that row.
    Image paths must lie inside ``images_dir``, except the ``trusted`` ones (the user's
    own query photo).
    """
    if not tiles:
        raise ValueError("render_grid needs at least one tile")
    headings = dict(headings or {})
    columns = columns or min(len(tiles), MAX_COLUMNS)
    rows = -(-len(tiles) // columns)
    cell_w, cell_h = tile_size + 2 * PAD, tile_size + CAPTION + 2 * PAD
    tops = [row * cell_h + HEADING * sum(1 for r in headings if r <= row) for row in range(rows)]
    canvas = Image.new("RGB", (columns * cell_w, tops[-1] + cell_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for row, text in headings.items():
        if 0 <= row < rows:
            draw.text((PAD, tops[row] - HEADING + 6), text, fill=(20, 20, 20), font=font)
    chars = max(8, tile_size // 7)
    for n, tile in enumerate(tiles):
        if tile is None:
            continue
        x0, y0 = (n % columns) * cell_w + PAD, tops[n // columns] + PAD
        allowed_anywhere = trusted is not None and str(tile.image_path) in trusted
        path = safe_image_path(tile.image_path, None if allowed_anywhere else images_dir)
        image = _load(path, tile_size) or _placeholder(tile_size)
        canvas.paste(image, (x0 + (tile_size - image.width) // 2, y0 + (tile_size - image.height) // 2))
        if tile.is_framed:
            draw.rectangle([x0 - 3, y0 - 3, x0 + tile_size + 2, y0 + tile_size + 2], outline=QUERY_FRAME, width=3)
        for line_no, line in enumerate(tile.caption(chars)):
            draw.text((x0, y0 + tile_size + 4 + 16 * line_no), line, fill=(20, 20, 20), font=font)
    return _save_png(canvas, Path(out))


def _save_png(image: Image.Image, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))

