"""Product drawings for the synthetic catalogue: a silhouette per product type, coloured and
patterned by the product's style, so that image features carry the planted style."""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["TYPES", "draw_product_image"]

TYPES = ("shoes", "shirt", "trousers", "dress", "bag")  # sector of angle(z1, z2)


def _silhouette(draw, p, name: str, women: bool, subtype: int, scale: int) -> None:
    """The product's outline, filled in ``draw`` (a mask); ``p`` maps unit to pixel coordinates."""
    if name == "shoes":
        shaft = (0.42, 0.22, 0.30)[subtype] if not (women and subtype == 0) else 0.5
        draw.polygon([p(0.12, 0.72), p(0.12, shaft), p(0.40, shaft), p(0.46, 0.55), p(0.86, 0.62),
                      p(0.90, 0.72)], fill=255)
        if women and subtype == 0:  # pump: heel
            draw.polygon([p(0.12, 0.72), p(0.18, 0.72), p(0.16, 0.84), p(0.13, 0.84)], fill=255)
        else:
            draw.rectangle([p(0.10, 0.72), p(0.92, 0.78)], fill=255)
    elif name == "shirt":
        draw.polygon([p(0.30, 0.18), p(0.42, 0.15), p(0.5, 0.22), p(0.58, 0.15), p(0.70, 0.18), p(0.90, 0.38),
                      p(0.80, 0.46), p(0.70, 0.38), p(0.70, 0.86), p(0.30, 0.86), p(0.30, 0.38), p(0.20, 0.46),
                      p(0.10, 0.38)], fill=255)
    elif name == "trousers" or (name == "dress" and not women):
        bottom = 0.90 if name == "trousers" else 0.55
        draw.polygon([p(0.30, 0.12), p(0.70, 0.12), p(0.74, bottom), p(0.55, bottom), p(0.5, 0.35),
                      p(0.45, bottom), p(0.26, bottom)], fill=255)
    elif name == "dress":
        draw.polygon([p(0.38, 0.10), p(0.62, 0.10), p(0.64, 0.38), p(0.80, 0.90), p(0.20, 0.90), p(0.36, 0.38)],
                     fill=255)
    else:  # bag
        top = (0.45, 0.35, 0.25)[subtype]
        draw.rectangle([p(0.18, top), p(0.82, 0.85)], fill=255)
        if subtype > 0:
            draw.arc([p(0.32, top - 0.22), p(0.68, top + 0.18)], 180, 360, fill=255, width=5 * scale)


def draw_product_image(kind: int, women: bool, subtype: int, hue: float, shade: float, pattern: int,
                       jitter: np.ndarray, size: int = 96):
    """A small RGB drawing of one product: silhouette by ``kind``, colour and pattern by style."""
    from PIL import Image, ImageDraw

    scale = 4  # draw large, downsample for smooth edges
    s = size * scale
    image = Image.new("RGB", (s, s), (246, 246, 244))
    mask = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(mask)
    dx, dy = (jitter[:2] * 0.03 * s).astype(int)
    zoom = 1.0 + 0.05 * float(jitter[2])

    def p(x: float, y: float) -> tuple[int, int]:
        return (int(s / 2 + (x - 0.5) * s * zoom) + dx, int(s / 2 + (y - 0.5) * s * zoom) + dy)

    _silhouette(draw, p, TYPES[kind], women, subtype, scale)
    r, g, b = colorsys.hls_to_rgb(hue, shade, 0.65)
    base = (int(r * 255), int(g * 255), int(b * 255))
    r2, g2, b2 = colorsys.hls_to_rgb((hue + 0.5) % 1.0, min(shade + 0.25, 0.92), 0.35)
    accent = (int(r2 * 255), int(g2 * 255), int(b2 * 255))
    fabric = Image.new("RGB", (s, s), base)
    fd = ImageDraw.Draw(fabric)
    step = int(s * 0.09)
    if pattern == 1:
        for y in range(0, s, step):
            fd.rectangle([0, y, s, y + step // 3], fill=accent)
    elif pattern == 2:
        for y in range(step // 2, s, step):
            for x in range(step // 2 + (y // step % 2) * step // 2, s, step):
                fd.ellipse([x - step // 5, y - step // 5, x + step // 5, y + step // 5], fill=accent)
    image.paste(fabric, (0, 0), mask)
    return image.resize((size, size), Image.LANCZOS)
