"""Opening product photos safely.

:func:`open_image` decodes an image file fully (so a truncated file fails here, not later
inside a worker), refuses decompression bombs, and returns an RGB image: grayscale,
palette, CMYK and 16-bit images are converted, transparency is flattened onto white
(product photos are shot on white). Every problem is a :class:`DataError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from graphrec.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "ImageTooLarge", "open_image", "to_rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
MAX_PIXELS = 64_000_000  # product photos are a few megapixels; anything far larger is refused


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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
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
