"""Opening product photos safely.

:func:`open_image` decodes an image file fully (so a truncated file fails here, not later
inside a worker), refuses decompression bombs, and returns an RGB image: grayscale,
palette, CMYK and 16-bit images are converted, transparency is flattened onto white
(product photos are shot on white). Every problem is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from graphrec.errors import DataError
from graphrec.io.ids import valid_asin
from graphrec.io.textfiles import open_regular

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "ImageTooLarge", "find_images", "open_image", "scan_images", "to_rgb", "valid_asin"]  # valid_asin: from io.ids

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_PIXELS = 64_000_000  # product photos are a few megapixels; anything far larger is refused


def scan_images(images_dir: str | os.PathLike) -> tuple[dict[str, Path], Counter, list[str]]:
    """The product images directly inside ``images_dir``: files ``<ASIN>.<jpg|jpeg|png|webp>``
    (any case). Both extract-features and build-graph use this, so features and pictures
    always come from the same file.

    Returns ``({ASIN: absolute path}, skipped counts, one sentence per skipped file)``. A file
    whose name is not an ASIN is ``bad_name``; a second image of one ASIN is ``duplicate``
    (the first suffix of :data:`IMAGE_SUFFIXES` wins, then name order); a symlink leading
    outside the folder is ``outside_folder``; a symlink that leads nowhere (a loop, or a
    missing target) is ``broken_link``; anything but a regular file (a FIFO, a folder) is
    ``not_a_file``.
    """
    root = Path(images_dir).resolve()
    skipped: Counter = Counter()
    problems: list[str] = []
    chosen: dict[str, tuple[int, Path]] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() not in IMAGE_SUFFIXES:
            continue
        path = root / entry.name
        why = _not_an_image_file(entry, path, root)
        if why is not None:
            skipped[why[0]] += 1
            problems.append(f"{path}: {why[1]}; skipped")
            continue
        rank = IMAGE_SUFFIXES.index(suffix.lower())
        if not valid_asin(stem):
            skipped["bad_name"] += 1
            problems.append(f"{path}: file name is not an ASIN (at most 10 ASCII characters); skipped")
        elif stem in chosen:
            skipped["duplicate"] += 1
            kept, dropped = sorted([chosen[stem], (rank, path)])
            chosen[stem] = kept
            problems.append(f"{dropped[1]}: a second image for ASIN {stem} (using {kept[1].name}); skipped")
        else:
            chosen[stem] = (rank, path)
    return {asin: path for asin, (_, path) in sorted(chosen.items())}, skipped, problems


def find_images(images_dir: str | os.PathLike) -> dict[str, str]:
    """``{ASIN: absolute path}`` of the product images directly inside ``images_dir``, chosen
    exactly as extract-features chooses them (:func:`scan_images`)."""
    found, _, _ = scan_images(images_dir)
    return {asin: str(path) for asin, path in found.items()}


def _not_an_image_file(entry: os.DirEntry, path: Path, root: Path) -> tuple[str, str] | None:
    """Why the directory entry cannot be an image of the folder (a reason key and words), or None."""
    try:
        if entry.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):  # RuntimeError: a symlink loop on Python < 3.13
                return "broken_link", "a symbolic link that leads nowhere (a loop or a missing target)"
            if not target.is_relative_to(root):
                return "outside_folder", "a link leading outside the images folder"
        if not entry.is_file():
            return "not_a_file", "not a regular file"
    except OSError:
        return "not_a_file", "cannot be examined"
    return None


class ImageTooLarge(DataError):
    """The image declares more pixels than :data:`MAX_PIXELS` (a possible decompression bomb)."""


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; transparent parts become white."""
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def open_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``path`` into an RGB :class:`PIL.Image.Image`, or raise :class:`DataError`."""
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError(f"image {path} does not exist; check the image folder or the manifest.")
    try:
        with warnings.catch_warnings(), open_regular(path, "image") as handle:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLarge(
                        f"image {path} is {width}x{height} pixels, more than the {max_pixels} allowed "
                        "(a possible decompression bomb); resize it or remove it."
                    )
                image.load()
                return to_rgb(image)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist; check the image folder or the manifest.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLarge(f"image {path} is too large to decode safely ({error}); resize it or remove it.") from None
    except UnidentifiedImageError:
        raise DataError(f"image {path} is not an image PIL can read (corrupt or another format); replace or remove it.") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"image {path} could not be decoded ({error}); it is probably truncated or corrupt.") from None
