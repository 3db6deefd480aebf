"""Feature rows far outside the rest. One record of 1e30 in a features file makes every
other product's features nearly 0 once training divides by the largest value, and the
model learns nothing (test AUC 0.5) without a word. build-graph counts such rows and
drops them by default, like NaN rows (``--keep-extreme`` keeps them); train asks
:func:`scaling_warning` whether its scale is dominated by a few rows.

A row is *extreme* when its largest absolute value is beyond :data:`EXTREME_FACTOR`
times the 90th percentile of the rows' largest absolute values. The percentile is taken
over rows (not values) so that a few bad rows, even with every value bad, cannot move
it: up to a tenth of the rows may be extreme before the reference itself is.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DOMINANCE_FACTOR", "EXTREME_FACTOR", "extreme_threshold", "row_peaks", "scaling_warning"]

EXTREME_FACTOR = 1000.0
DOMINANCE_FACTOR = 50.0
_QUANTILE = 90.0


def row_peaks(rows: np.ndarray) -> np.ndarray:
    """The largest absolute value of each row, as float64 (NaN rows give NaN)."""
    if rows.shape[0] == 0:
        return np.empty(0)
    return np.abs(np.asarray(rows, dtype=np.float32)).max(axis=1).astype(np.float64)


def extreme_threshold(peaks: np.ndarray, factor: float = EXTREME_FACTOR) -> tuple[float, float]:
    """``(threshold, reference)``: rows whose peak exceeds ``threshold`` are extreme;
    ``reference`` is the 90th percentile of the finite peaks (inf threshold when it is 0,
    e.g. mostly empty rows: nothing is called extreme)."""
    finite = peaks[np.isfinite(peaks)]
    if len(finite) == 0:
        return float("inf"), 0.0
    reference = float(np.percentile(finite, _QUANTILE))
    return (reference * factor if reference > 0 else float("inf")), reference


def _sample(features: np.ndarray, rows: int) -> np.ndarray:
    """Evenly spaced rows of a (memory-mapped) matrix, at most ``rows`` of them."""
    step = max(1, features.shape[0] // rows)
    return np.asarray(features[::step][:rows])


def scaling_warning(features: np.ndarray, scale: float | None = None, sample_rows: int = 100_000) -> str | None:
    """A sentence when dividing ``features`` by ``scale`` (default: its largest absolute
    value) would be dominated by a few rows, else None.

    Dominated: ``scale`` is more than :data:`DOMINANCE_FACTOR` times the 90th percentile of
    the rows' largest absolute values (over at most ``sample_rows`` evenly spaced rows), so
    most rows would end up within a few percent of 0. Pass the scale training computed to
    avoid a second pass over a large matrix."""
    if features.ndim != 2 or features.shape[0] == 0:
        return None
    peaks = row_peaks(_sample(features, sample_rows))
    if scale is None:
        scale = float(max((np.nanmax(row_peaks(features[i:i + 65536])) for i in range(0, features.shape[0], 65536)), default=0.0))
    _, reference = extreme_threshold(peaks)
    if not np.isfinite(scale) or reference <= 0 or scale <= DOMINANCE_FACTOR * reference:
        return None
    share = float(np.mean(peaks > DOMINANCE_FACTOR * reference))
    return (
        f"the feature scaling divides by {scale:.4g}, {scale / reference:,.0f} times the typical row's largest value "
        f"({reference:.4g}); {share:.2%} of the rows dominate it and the others shrink to nearly 0. Rebuild the "
        "graph without --keep-extreme (build-graph then drops such rows), or fix the features file."
    )
