"""How the synthetic catalogue's relations are drawn from the planted styles (see
:mod:`graphrec.datasets.synthetic` for the model), and the Bayes limit of each: the
accuracy of the true posterior at its best threshold under the paper's protocol."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "MAX_CANDIDATE_FRACTION",
    "RELATION_RULES",
    "SPECTRUM_FACTORS",
    "STYLE_DIM",
    "RelationRule",
    "bayes_limits",
    "best_threshold_accuracy",
    "draw_relation",
    "relation_rules",
]

STYLE_DIM = 6
MAX_CANDIDATE_FRACTION = 0.15


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


def draw_relation(rule: RelationRule, z: np.ndarray, popularity: np.ndarray, rng: np.random.Generator) -> _Relation:
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


def bayes_limits(rel: _Relation, z, popularity, rng, max_pairs: int = 200_000) -> tuple[float, float]:
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


