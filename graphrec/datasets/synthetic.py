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
import gzip
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import ndtr

from graphrec.datasets.drawing import TYPES, draw_product_image
from graphrec.datasets.relations import (
    RELATION_RULES,
    SPECTRUM_FACTORS,
    STYLE_DIM,
    RelationRule,
    bayes_limits,
    best_threshold_accuracy,
    draw_relation,
    relation_rules,
)
from graphrec.fs import atomic_write, write_json_atomic
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

NUISANCE_DIM = 10
ROOT = "Clothing, Shoes & Jewelry"


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


# --------------------------------------------------------------------------- writing


def _listing(relations: dict, n: int, seed: int) -> dict:
    """Per relation, each undirected edge listed once, by a random one of its two ends:
    ``(partners, start)`` with node i's partners ``partners[start[i]:start[i + 1]]``."""
    listing = {}
    for name, rel in relations.items():
        lo, hi = rel.keys // n, rel.keys % n
        flip = np.random.default_rng([seed, 3]).random(len(lo)) < 0.5
        src, dst = np.where(flip, hi, lo), np.where(flip, lo, hi)
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        listing[name] = (dst, np.searchsorted(src, np.arange(n + 1)))
    return listing


def _write_metadata(path: Path, asins, attrs, brands, listing, popularity: np.ndarray) -> None:
    """Amazon 2014 metadata, gzip, one Python-literal dict per line."""
    n = len(asins)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-popularity)] = np.arange(1, n + 1)

    def write(tmp: Path) -> None:
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as handle:
            for i in range(n):
                handle.write(repr(_record(i, asins, attrs, brands, listing, rank)) + "\n")

    atomic_write(path, write)


def _write_images(images_dir: Path, asins, attrs, nuisance: np.ndarray, image_size: int) -> None:
    """``images/<ASIN>.png``, drawn into a staging folder renamed into place."""
    staging = images_dir.with_name(images_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for i in range(len(asins)):
        picture = draw_product_image(int(attrs.kind[i]), bool(attrs.women[i]), int(attrs.subtype[i]),
                                     float(attrs.hue[i]), float(attrs.shade[i]), int(attrs.pattern[i]),
                                     nuisance[i, :3], size=image_size)
        picture.save(staging / f"{asins[i]}.png", optimize=True)
    shutil.rmtree(images_dir, ignore_errors=True)
    staging.rename(images_dir)


def _write_features(path: Path, asins, z, nuisance, feature_dim: int, seed: int, chunk: int, images_dir: Path | None) -> None:
    """Planted features as a McAuley ``.b`` file, with a sidecar whose extractor is null."""
    n = len(asins)

    def write(tmp: Path) -> None:
        with BinaryFeatureWriter(tmp, dim=feature_dim) as writer:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                block = planted_features(z[start:stop], nuisance[start:stop], feature_dim, seed,
                                         np.random.default_rng([seed, 4, start]))
                writer.write(asins[start:stop], block)

    atomic_write(path, write)
    sidecar = {"extractor": None, "images_dir": str(images_dir.resolve()) if images_dir else None,
               "image_manifest": None, "num_images": n, "skipped": {},
               "synthetic": {"generator": "graphrec.datasets.synthetic", "seed": seed}}
    write_json_atomic(Path(str(path) + ".json"), sidecar)


def _params(n: int, seed: int, feature_dim: int, relations: dict) -> dict:
    return {
        "products": n, "seed": seed, "feature_dim": feature_dim, "style_dim": STYLE_DIM,
        "relations": {name: {"weights": list(rel.rule.weights), "target_degree": rel.rule.degree,
                             "candidates": rel.rule.candidates, "noise": rel.rule.noise,
                             "radius2": rel.radius2, "alpha": rel.alpha, "noise_draws": rel.noise_draws}
                      for name, rel in relations.items()},
    }


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
        relations[rule.name] = draw_relation(rule, z, popularity, np.random.default_rng([seed, 1, len(relations)]))
    bayes, bayes_style = {}, {}
    for name, rel in relations.items():
        bayes[name], bayes_style[name] = bayes_limits(rel, z, popularity, np.random.default_rng([seed, 2]))

    meta_path = out / meta_name
    _write_metadata(meta_path, asins, attrs, brands, _listing(relations, n, seed), popularity)
    images_dir = out / "images" if images else None
    if images_dir is not None:
        _write_images(images_dir, asins, attrs, nuisance, image_size)
    features_path = out / features_name if features else None
    if features_path is not None:
        _write_features(features_path, asins, z, nuisance, feature_dim, seed, chunk, images_dir)

    num_edges = {name: int(len(rel.keys)) for name, rel in relations.items()}
    params = _params(n, seed, feature_dim, relations)
    truth_path = out / "truth.npz"
    np.savez_compressed(truth_path, asins=np.array(asins), z=z, popularity=popularity,
                        **{f"edges_{name}": rel.keys for name, rel in relations.items()})
    report = {"num_products": n, "num_edges": num_edges, "bayes_limit": bayes,
              "bayes_limit_style": bayes_style, "params": params}
    write_json_atomic(out / "generator.json", report)
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
