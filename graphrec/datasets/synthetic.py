"""A synthetic fashion catalogue with a planted low-rank style model and a known Bayes limit.

Every product ``i`` has a latent style ``z_i ~ N(0, I_6)``. Everything else is drawn from it:

* **what it is and looks like** -- gender from ``z0``, the garment type (shoes, shirt,
  trousers, dress or shorts, bag) from the angle of ``(z1, z2)``, a sub-type and the shade
  from ``z3``, the hue from ``z4``, the pattern (plain, stripes, dots) from ``z5``. Images
  (``--images``) are small PNG drawings of that silhouette in that colour and pattern;
* **the category path, brand and price** -- categories follow the type and gender, brands
  are nearest-of-a-few brand centres in style space, log-price is linear in ``z0`` and
  ``z3`` plus a brand effect: all carry signal for a non-visual (FM) baseline;
* **relations** -- for relation ``r`` with metric weights ``w_r``, the pair ``{i, j}`` is an
  edge with probability ``1 - (1 - g_r(d)) (1 - q_ij)``, where ``d = sum_k w_rk (z_ik -
  z_jk)^2``, ``g_r(d) = alpha_r * (1 - d / R_r^2)`` for ``d < R_r^2`` and 0 beyond (a compact
  kernel: similar styles are co-purchased), and ``q_ij`` is the chance that one of the
  relation's "noise" draws (one endpoint picked by popularity, the other uniformly) hit the
  pair. ``R_r`` is set so that each product has about ``candidates`` partners within it
  (at most 15% of the catalogue), ``alpha_r <= 1`` so that the average degree matches
  ``degree`` (in catalogues of a few hundred products the degree can fall short);
* **features** -- planted 4096-d "fc7-like" vectors ``relu([z, u] G + b + noise) * scale``
  with nuisance factors ``u``: non-negative, about 70% zeros, and the style is linearly
  recoverable from them (units come in sign-flipped pairs).

Because the edge probability is known in closed form, the Bayes-optimal accuracy under
the paper's protocol (positives = the relation's undirected edges, as many uniformly
random non-edges, accuracy at the best threshold of the true posterior) is measured on
the realised graph and reported as :attr:`SyntheticCatalogue.bayes_limit`. The
posterior is a decreasing function of the style distance (up to the tiny popularity
term, see ``bayes_limit_style``), so a rank-K Mahalanobis model with ``K >= 6`` can
approach it. The limit rises slowly with the catalogue size (a random pair is less likely
to fall inside a kernel); it is about 0.93 for ``also_bought`` at 4,000 products.

Nothing is ``N x N``: candidate pairs come from a k-d tree over slabs of the style
space, and metadata and features are written in streamed chunks, so a million products
take minutes (and 16 GB of features). Run ``python -m graphrec.datasets.synthetic --help``.
"""

from __future__ import annotations

import argparse
import colorsys
import gzip
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import ndtr

from graphrec.io.features import BinaryFeatureWriter

__all__ = [
    "STYLE_DIM",
    "RelationRule",
    "RELATION_RULES",
    "SPECTRUM_FACTORS",
    "relation_rules",
    "SyntheticCatalogue",
    "generate_catalogue",
    "planted_features",
    "best_threshold_accuracy",
    "draw_product_image",
    "main",
]

STYLE_DIM = 6
NUISANCE_DIM = 10
MAX_CANDIDATE_FRACTION = 0.15
ROOT = "Clothing, Shoes & Jewelry"
TYPES = ("shoes", "shirt", "trousers", "dress", "bag")  # sector of angle(z1, z2)


@dataclass(frozen=True)
class RelationRule:
    """How one relation's edges are drawn (see the module docstring)."""

    name: str
    weights: tuple[float, ...]  # metric weight per style dimension
    degree: float  # target average degree (undirected)
    candidates: float  # expected products within the kernel radius of a product
    noise: float  # fraction of edges drawn by popularity instead of style


RELATION_RULES = (
    # co-purchases: overall style similarity
    RelationRule("also_bought", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0), degree=13.5, candidates=210.0, noise=0.06),
    # co-views: substitutes, the silhouette and gender matter most, colour less
    RelationRule("also_viewed", (1.5, 2.0, 2.0, 1.0, 0.4, 0.4), degree=18.0, candidates=320.0, noise=0.10),
    # bought together: an outfit, same gender and colours, type matters little
    RelationRule("bought_together", (1.0, 0.25, 0.25, 1.0, 1.5, 1.5), degree=3.0, candidates=60.0, noise=0.03),
)

#: Style spectra (``--spectrum``). ``flat`` (the default, and the bundled sample) weighs
#: the six style dimensions of also_bought equally, so a K-dimensional projection with
#: K < 6 can only see part of the style: with the true styles themselves, the best single
#: dimension reaches 0.70 accuracy at 4,000 products, below Euclidean distance on the raw
#: features. ``decaying`` halves the weight from one style dimension to the next (x 4, 2,
#: 1, 1/2, 1/4, 1/8 on every relation's weights), the way a few factors such as gender
#: and garment type dominate real co-purchases; small K is meaningful there.
SPECTRUM_FACTORS = {"flat": (1.0,) * STYLE_DIM, "decaying": tuple(2.0 ** (2 - k) for k in range(STYLE_DIM))}


def relation_rules(spectrum: str = "flat") -> tuple[RelationRule, ...]:
    """:data:`RELATION_RULES` with every relation's style weights scaled by the ``spectrum``'s factors."""
    if spectrum not in SPECTRUM_FACTORS:
        raise ValueError(f"unknown spectrum {spectrum!r}; choose one of {', '.join(SPECTRUM_FACTORS)}")
    factors = SPECTRUM_FACTORS[spectrum]
    return tuple(replace(rule, weights=tuple(w * f for w, f in zip(rule.weights, factors))) for rule in RELATION_RULES)


@dataclass
class SyntheticCatalogue:
    """What :func:`generate_catalogue` wrote, and the best accuracy any model can reach on it."""

    out_dir: Path
    meta_path: Path
    features_path: Path | None
    images_dir: Path | None
    truth_path: Path
    num_products: int
    num_edges: dict[str, int]  # undirected edges per relation
    bayes_limit: dict[str, float]  # relation -> Bayes-optimal accuracy (true posterior)
    bayes_limit_style: dict[str, float] = field(default_factory=dict)  # posterior from style alone
    params: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"synthetic catalogue: {self.num_products} products in {self.out_dir}"]
        for name, count in self.num_edges.items():
            lines.append(
                f"  {name:16s} {count:9d} edges (avg degree {2 * count / max(self.num_products, 1):5.2f})  "
                f"Bayes limit {self.bayes_limit[name]:.4f} (style only {self.bayes_limit_style[name]:.4f})"
            )
        lines.append(f"  metadata  {self.meta_path}")
        if self.features_path:
            lines.append(f"  features  {self.features_path}")
        if self.images_dir:
            lines.append(f"  images    {self.images_dir}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- identities


def _asins(n: int, seed: int) -> list[str]:
    """Unique ASIN-like ids ``B0XXXXXXXX``: an affine bijection of the index modulo 36^8."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    modulus = 36**8
    offset = (seed * 2654435761 + 12345) % modulus
    out = []
    for i in range(n):
        value = (i * 1_000_003 + offset) % modulus  # 1_000_003 is prime, coprime to 36^8
        chars = []
        for _ in range(8):
            value, rem = divmod(value, 36)
            chars.append(digits[rem])
        out.append("B0" + "".join(reversed(chars)))
    return out


def _product_type(z: np.ndarray) -> np.ndarray:
    angle = np.arctan2(z[:, 2], z[:, 1]) % (2 * np.pi)
    return np.minimum((angle / (2 * np.pi / len(TYPES))).astype(np.int64), len(TYPES) - 1)


_SUBTYPES = {
    ("shoes", "Men"): ("Shoes", ("Oxfords", "Sneakers", "Boots")),
    ("shoes", "Women"): ("Shoes", ("Pumps", "Sneakers", "Boots")),
    ("shirt", "Men"): ("Clothing", ("Shirts",)),
    ("shirt", "Women"): ("Clothing", ("Tops & Tees",)),
    ("trousers", "Men"): ("Clothing", ("Pants",)),
    ("trousers", "Women"): ("Clothing", ("Pants",)),
    ("dress", "Men"): ("Clothing", ("Shorts",)),
    ("dress", "Women"): ("Clothing", ("Dresses",)),
    ("bag", "Men"): ("Accessories", ("Wallets", "Messenger Bags", "Backpacks")),
    ("bag", "Women"): ("Handbags & Wallets", ("Clutches", "Shoulder Bags", "Totes")),
}
# Colour names at their HLS hue (the hue the images are drawn with); a title takes the nearest.
_HUE_NAMES = ("Red", "Orange", "Yellow", "Lime", "Green", "Teal", "Sky Blue", "Blue", "Purple", "Pink")
_HUE_CENTRES = np.array([0.0, 0.08, 0.16, 0.25, 0.33, 0.47, 0.56, 0.65, 0.77, 0.9])


def _hue_name(hue: float) -> str:
    gap = np.abs(_HUE_CENTRES - hue)
    return _HUE_NAMES[int(np.argmin(np.minimum(gap, 1.0 - gap)))]
_NOUNS = {"shoes": "Shoe", "shirt": "Shirt", "trousers": "Trousers", "dress": "Dress", "bag": "Bag"}
_SINGULAR = {"Oxfords": "Oxford", "Sneakers": "Sneaker", "Boots": "Boot", "Pumps": "Pump", "Wallets": "Wallet",
             "Messenger Bags": "Messenger Bag", "Backpacks": "Backpack", "Clutches": "Clutch",
             "Shoulder Bags": "Shoulder Bag", "Totes": "Tote"}
_SYLLABLES = ("ka", "lo", "mi", "ra", "to", "ve", "su", "an", "el", "or", "ni", "za", "bo", "di")


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    names, seen = [], set()
    while len(names) < n:
        parts = rng.choice(len(_SYLLABLES), size=int(rng.integers(2, 4)))
        name = "".join(_SYLLABLES[p] for p in parts).capitalize()
        if len(seen) > 0.5 * len(_SYLLABLES) ** 3:
            name = f"{name}{len(names)}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


@dataclass
class _Attributes:
    kind: np.ndarray  # index into TYPES
    women: np.ndarray  # bool
    subtype: np.ndarray  # 0, 1, 2 from z3 terciles
    hue: np.ndarray  # [0, 1)
    shade: np.ndarray  # lightness in [0.25, 0.7]
    pattern: np.ndarray  # 0 plain, 1 stripes, 2 dots
    brand: np.ndarray  # index into brand names, -1 = no brand
    price: np.ndarray  # dollars, NaN = unknown


def _attributes(z: np.ndarray, rng: np.random.Generator, brand_centres: np.ndarray) -> _Attributes:
    n = len(z)
    kind = _product_type(z)
    women = z[:, 0] > 0
    subtype = np.digitize(z[:, 3], [-0.43, 0.43])
    hue = ndtr(z[:, 4])
    shade = 0.25 + 0.45 * ndtr(z[:, 3])
    pattern = np.where(z[:, 5] > 0.8, 1, np.where(z[:, 5] < -0.8, 2, 0))
    # brands: one of the three nearest brand centres, 10% unbranded
    _, near = cKDTree(brand_centres).query(z, k=min(3, len(brand_centres)))
    near = np.atleast_2d(near.T).T if near.ndim == 1 else near
    brand = near[np.arange(n), rng.integers(0, near.shape[1], size=n)]
    brand = np.where(rng.random(n) < 0.1, -1, brand)
    brand_effect = np.sin(np.arange(len(brand_centres)) * 1.7) * 0.3
    log_price = 3.0 + 0.35 * z[:, 3] + 0.2 * z[:, 0] + np.where(brand >= 0, brand_effect[brand], 0.0)
    log_price += 0.15 * rng.standard_normal(n) + np.array([0.3, -0.2, 0.0, 0.2, 0.4])[kind]
    price = np.round(np.exp(log_price), 2)
    price = np.where(rng.random(n) < 0.15, np.nan, price)
    return _Attributes(kind, women, subtype, hue, shade, pattern, brand, price)


# --------------------------------------------------------------------------- edges


def _kernel_radius(weights: np.ndarray, fraction: float, rng: np.random.Generator) -> float:
    """``R^2`` such that a fraction ``fraction`` of random pairs have ``d < R^2`` (Monte Carlo)."""
    samples = 400_000
    delta = rng.standard_normal((samples, len(weights))) * math.sqrt(2.0)
    d = (delta**2) @ weights
    return float(np.quantile(d, min(max(fraction, 10.0 / samples), 1.0)))


def _candidate_pairs(points: np.ndarray, radius: float, slab_size: int = 50_000):
    """Yield all pairs ``(i, j, d)`` with ``||p_i - p_j||^2 < radius^2``, slab by slab.

    Points are sorted by their first coordinate; each pair is produced by the slab holding
    the endpoint with the smaller coordinate, from a tree over that slab and everything
    within ``radius`` above it, so memory is bounded by a slab's pairs.
    """
    order = np.argsort(points[:, 0], kind="stable")
    first = points[order, 0]
    n = len(points)
    for lo in range(0, n, slab_size):
        hi = min(lo + slab_size, n)
        end = int(np.searchsorted(first, first[hi - 1] + radius, side="right"))
        block = points[order[lo:end]]
        pairs = cKDTree(block).query_pairs(radius, output_type="ndarray")
        if len(pairs) == 0:
            continue
        pairs = pairs[np.minimum(pairs[:, 0], pairs[:, 1]) < hi - lo]
        d = ((block[pairs[:, 0]] - block[pairs[:, 1]]) ** 2).sum(axis=1)
        keep = d < radius * radius
        yield order[lo + pairs[keep, 0]], order[lo + pairs[keep, 1]], d[keep]


def _edge_keys(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)


@dataclass
class _Relation:
    rule: RelationRule
    radius2: float
    alpha: float
    noise_draws: int
    keys: np.ndarray  # sorted unique edge keys i * n + j, i < j


def _draw_relation(rule: RelationRule, z: np.ndarray, popularity: np.ndarray, rng: np.random.Generator) -> _Relation:
    n = len(z)
    weights = np.asarray(rule.weights, dtype=np.float64)
    # at most 15% of the catalogue inside a kernel, so small catalogues keep some locality
    fraction = min(rule.candidates / max(n - 1, 1), MAX_CANDIDATE_FRACTION)
    radius2 = _kernel_radius(weights, fraction, rng)
    scaled = z * np.sqrt(weights)
    # Draw u ~ U(0,1) per candidate pair and keep v = u / k where u < k: the pair is then an
    # edge of Bernoulli(alpha * k) exactly when v < alpha, for any alpha <= 1 chosen later.
    kept_i, kept_j, kept_v = [], [], []
    kernel_sum = 0.0
    for i, j, d in _candidate_pairs(scaled, math.sqrt(radius2)):
        k = 1.0 - d / radius2
        kernel_sum += float(k.sum())
        u = rng.random(len(k))
        keep = u < k
        kept_i.append(i[keep])
        kept_j.append(j[keep])
        kept_v.append(u[keep] / k[keep])
    style_edges = rule.degree * n / 2 * (1 - rule.noise)
    alpha = min(1.0, style_edges / kernel_sum) if kernel_sum > 0 else 0.0
    if kept_i:
        i, j, v = np.concatenate(kept_i), np.concatenate(kept_j), np.concatenate(kept_v)
        keys = _edge_keys(i[v < alpha], j[v < alpha], n)
    else:
        keys = np.empty(0, dtype=np.int64)
    # popularity noise: one end by popularity, the other uniform
    draws = int(round(rule.degree * n / 2 * rule.noise))
    a = rng.choice(n, size=draws, p=popularity)
    b = rng.integers(0, n, size=draws)
    ok = a != b
    keys = np.unique(np.concatenate([keys, _edge_keys(a[ok], b[ok], n)]))
    return _Relation(rule, radius2, alpha, draws, keys)


def _posterior(rel: _Relation, z: np.ndarray, popularity: np.ndarray, i: np.ndarray, j: np.ndarray):
    """True edge probability of pairs ``(i, j)``: full, and from style alone."""
    n = len(z)
    weights = np.asarray(rel.rule.weights)
    d = ((z[i] - z[j]) ** 2) @ weights
    g = np.where(d < rel.radius2, rel.alpha * (1.0 - d / rel.radius2), 0.0)
    hit = (popularity[i] + popularity[j]) / n
    q = -np.expm1(rel.noise_draws * np.log1p(-hit))
    q_style = -math.expm1(rel.noise_draws * math.log1p(-2.0 / (n * n)))  # popularity unknown: its mean
    return 1 - (1 - g) * (1 - q), 1 - (1 - g) * (1 - q_style)


def best_threshold_accuracy(positive: np.ndarray, negative: np.ndarray) -> float:
    """Accuracy on ``positive`` + ``negative`` scores at the best threshold ``score >= t``.

    Tied scores fall on the same side of any threshold, so ties are never split.
    """
    values = np.unique(np.concatenate([positive, negative]))
    pos_below = np.searchsorted(np.sort(positive), values, side="left")  # predicted negative
    neg_below = np.searchsorted(np.sort(negative), values, side="left")
    correct = (len(positive) - pos_below) + neg_below
    correct = np.append(correct, len(negative))  # threshold above everything
    return float(correct.max() / (len(positive) + len(negative)))


def _bayes(rel: _Relation, z, popularity, rng, max_pairs: int = 200_000) -> tuple[float, float]:
    n = len(z)
    keys = rel.keys
    if len(keys) == 0:
        return float("nan"), float("nan")
    if len(keys) > max_pairs:
        keys = rng.choice(keys, size=max_pairs, replace=False)
    pi, pj = keys // n, keys % n
    neg_i = np.empty(0, dtype=np.int64)
    neg_j = np.empty(0, dtype=np.int64)
    while len(neg_i) < len(keys):  # uniform random non-edges
        m = 2 * (len(keys) - len(neg_i)) + 16
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        ok = (a != b) & ~np.isin(_edge_keys(a, b, n), rel.keys)
        neg_i, neg_j = np.concatenate([neg_i, a[ok]]), np.concatenate([neg_j, b[ok]])
    neg_i, neg_j = neg_i[: len(keys)], neg_j[: len(keys)]
    full_pos, style_pos = _posterior(rel, z, popularity, pi, pj)
    full_neg, style_neg = _posterior(rel, z, popularity, neg_i, neg_j)
    return best_threshold_accuracy(full_pos, full_neg), best_threshold_accuracy(style_pos, style_neg)


# --------------------------------------------------------------------------- features


def _feature_generator(feature_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit weights ``G`` [STYLE_DIM + NUISANCE_DIM, F] and biases, in sign-flipped pairs."""
    rng = np.random.default_rng([seed, 7])
    half = (feature_dim + 1) // 2
    g = rng.standard_normal((STYLE_DIM + NUISANCE_DIM, half))
    g[STYLE_DIM:] *= 0.5  # nuisance (pose, light) moves features less than style
    g /= np.linalg.norm(g, axis=0, keepdims=True)
    bias = -0.55 + 0.15 * rng.standard_normal(half)
    weights = np.concatenate([g, -g], axis=1)[:, :feature_dim]
    biases = np.concatenate([bias, bias])[:feature_dim]
    return weights.astype(np.float32), biases.astype(np.float32)


def planted_features(z: np.ndarray, nuisance: np.ndarray, feature_dim: int, seed: int, rng: np.random.Generator) -> np.ndarray:
    """fc7-like rows for styles ``z``: ``relu([z, u] G + b + 0.02 noise) * 6`` as float32."""
    weights, biases = _feature_generator(feature_dim, seed)
    latent = np.concatenate([z, nuisance], axis=1).astype(np.float32)
    pre = latent @ weights + biases
    pre += 0.02 * rng.standard_normal(pre.shape, dtype=np.float32)
    return (np.maximum(pre, 0.0) * 6.0).astype(np.float32)


# --------------------------------------------------------------------------- images


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

    name = TYPES[kind]
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


# --------------------------------------------------------------------------- writing


def _atomic_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def generate_catalogue(
    out_dir: str | os.PathLike,
    n_products: int,
    feature_dim: int = 4096,
    seed: int = 0,
    images: bool = False,
    features: bool = True,
    image_size: int = 96,
    meta_name: str = "meta_sample.json.gz",
    features_name: str = "image_features.b",
    rules: tuple[RelationRule, ...] = RELATION_RULES,
    chunk: int = 8192,
    quiet: bool = True,
) -> SyntheticCatalogue:
    """Write a synthetic catalogue to ``out_dir`` and return what was written.

    Files: ``meta_name`` (Amazon 2014 metadata, gzip, one Python-literal dict per line
    exactly as McAuley's dump writes them), ``features_name`` (McAuley ``.b``, planted features, with a
    JSON sidecar whose extractor is null), ``images/<ASIN>.png`` when ``images``,
    ``generator.json`` (parameters, counts, Bayes limits) and ``truth.npz`` (styles,
    popularity, edges) for checks. Deterministic for a given ``seed``.
    """
    if n_products < 10:
        raise ValueError("n_products must be at least 10")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(n_products)
    z = rng.standard_normal((n, STYLE_DIM))
    nuisance = rng.standard_normal((n, NUISANCE_DIM))
    popularity = rng.lognormal(0.0, 1.0, size=n)
    popularity /= popularity.sum()
    n_brands = max(8, n // 40)
    brand_centres = rng.standard_normal((n_brands, STYLE_DIM)) * 0.9
    brands = _brand_names(n_brands, rng)
    attrs = _attributes(z, rng, brand_centres)
    asins = _asins(n, seed)

    relations = {}
    for rule in rules:
        relations[rule.name] = _draw_relation(rule, z, popularity, np.random.default_rng([seed, 1, len(relations)]))
    bayes, bayes_style = {}, {}
    for name, rel in relations.items():
        bayes[name], bayes_style[name] = _bayes(rel, z, popularity, np.random.default_rng([seed, 2]))

    # metadata: each undirected edge listed once, by a random one of its two ends
    listing = {}
    for name, rel in relations.items():
        lo, hi = rel.keys // n, rel.keys % n
        flip = np.random.default_rng([seed, 3]).random(len(lo)) < 0.5
        src, dst = np.where(flip, hi, lo), np.where(flip, lo, hi)
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        listing[name] = (dst, np.searchsorted(src, np.arange(n + 1)))
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-popularity)] = np.arange(1, n + 1)
    meta_path = out / meta_name
    tmp = _atomic_path(meta_path)
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as handle:
        for i in range(n):
            handle.write(repr(_record(i, asins, attrs, brands, listing, rank)) + "\n")
    tmp.replace(meta_path)

    images_dir = None
    if images:
        images_dir = out / "images"
        staging = out / "images.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for i in range(n):
            picture = draw_product_image(int(attrs.kind[i]), bool(attrs.women[i]), int(attrs.subtype[i]),
                                         float(attrs.hue[i]), float(attrs.shade[i]), int(attrs.pattern[i]),
                                         nuisance[i, :3], size=image_size)
            picture.save(staging / f"{asins[i]}.png", optimize=True)
        shutil.rmtree(images_dir, ignore_errors=True)
        staging.rename(images_dir)

    features_path = None
    if features:
        features_path = out / features_name
        tmp = _atomic_path(features_path)
        with BinaryFeatureWriter(tmp, dim=feature_dim) as writer:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                block = planted_features(z[start:stop], nuisance[start:stop], feature_dim, seed,
                                         np.random.default_rng([seed, 4, start]))
                writer.write(asins[start:stop], block)
        tmp.replace(features_path)
        sidecar = {"extractor": None, "images_dir": str(images_dir.resolve()) if images_dir else None,
                   "image_manifest": None, "num_images": n, "skipped": {},
                   "synthetic": {"generator": "graphrec.datasets.synthetic", "seed": seed}}
        Path(str(features_path) + ".json").write_text(json.dumps(sidecar, indent=2) + "\n")

    num_edges = {name: int(len(rel.keys)) for name, rel in relations.items()}
    params = {
        "products": n, "seed": seed, "feature_dim": feature_dim, "style_dim": STYLE_DIM,
        "relations": {name: {"weights": list(rel.rule.weights), "target_degree": rel.rule.degree,
                             "candidates": rel.rule.candidates, "noise": rel.rule.noise,
                             "radius2": rel.radius2, "alpha": rel.alpha, "noise_draws": rel.noise_draws}
                      for name, rel in relations.items()},
    }
    truth_path = out / "truth.npz"
    np.savez_compressed(truth_path, asins=np.array(asins), z=z, popularity=popularity,
                        **{f"edges_{name}": rel.keys for name, rel in relations.items()})
    report = {"num_products": n, "num_edges": num_edges, "bayes_limit": bayes,
              "bayes_limit_style": bayes_style, "params": params}
    (out / "generator.json").write_text(json.dumps(report, indent=2) + "\n")
    return SyntheticCatalogue(out_dir=out, meta_path=meta_path, features_path=features_path, images_dir=images_dir,
                              truth_path=truth_path, num_products=n, num_edges=num_edges, bayes_limit=bayes,
                              bayes_limit_style=bayes_style, params=params)


def _record(i: int, asins, attrs: _Attributes, brands, listing, rank) -> dict:
    kind = TYPES[int(attrs.kind[i])]
    gender = "Women" if attrs.women[i] else "Men"
    branch, leaves = _SUBTYPES[(kind, gender)]
    leaf = leaves[int(attrs.subtype[i]) % len(leaves)]
    path = [ROOT, gender, branch, leaf] if branch != leaf else [ROOT, gender, branch]
    if branch == "Handbags & Wallets":
        path = [ROOT, gender, branch, leaf]
    colour = _hue_name(float(attrs.hue[i]))
    look = ("", "Striped ", "Polka Dot ")[int(attrs.pattern[i])]
    brand = brands[int(attrs.brand[i])] if attrs.brand[i] >= 0 else None
    noun = _SINGULAR.get(leaf, leaf) if kind in ("shoes", "bag") else "Shorts" if leaf == "Shorts" else _NOUNS[kind]
    title = f"{brand + ' ' if brand else ''}{gender}'s {colour} {look}{noun}"
    record = {"asin": asins[i], "title": title}
    if not math.isnan(attrs.price[i]):
        record["price"] = float(attrs.price[i])
    record["imUrl"] = f"https://example.invalid/images/{asins[i]}.png"
    related = {}
    for name, (dst, start) in listing.items():
        partners = dst[start[i]:start[i + 1]]
        if len(partners):
            related[name] = [asins[j] for j in partners]
    if related:
        record["related"] = related
    record["salesRank"] = {"Clothing": int(rank[i])}
    if brand:
        record["brand"] = brand
    record["categories"] = [path]
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graphrec.datasets.synthetic",
        description="Write a synthetic fashion catalogue (Amazon 2014 metadata, planted fc7-like features, "
                    "optional product images) and print the Bayes limit of each relation.")
    parser.add_argument("--products", type=int, default=4000, help="number of products (default 4000)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--images", action="store_true", help="also draw images/<ASIN>.png")
    parser.add_argument("--image-size", type=int, default=96, help="image side in pixels (default 96)")
    parser.add_argument("--no-features", action="store_true", help="do not write planted features")
    parser.add_argument("--feature-dim", type=int, default=4096, help="planted feature dimension (default 4096)")
    parser.add_argument("--meta-name", default="meta_sample.json.gz", help="metadata file name")
    parser.add_argument("--spectrum", choices=sorted(SPECTRUM_FACTORS), default="flat",
                        help="style weights: flat (six equal style dimensions, the default) or decaying "
                             "(halving from one dimension to the next, as when a few factors dominate)")
    args = parser.parse_args(argv)
    catalogue = generate_catalogue(args.out, args.products, feature_dim=args.feature_dim, seed=args.seed,
                                   images=args.images, features=not args.no_features, image_size=args.image_size,
                                   meta_name=args.meta_name, rules=relation_rules(args.spectrum))
    print(catalogue.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
