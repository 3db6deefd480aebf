"""Link-prediction models: one per file, all :class:`~graphrec.models.base.LinkModel`.

``MODELS`` maps the ``--decoder`` names to classes; :func:`model_class` looks one up
with a clear error.
"""

from __future__ import annotations

from graphrec.errors import UsageError
from graphrec.models.base import LinkModel, MetricModel
from graphrec.models.category_tree import CategoryTreeModel
from graphrec.models.euclidean import EuclideanModel
from graphrec.models.fm import FactorizationMachine
from graphrec.models.mahalanobis import MahalanobisModel
from graphrec.models.wnn import WeightedNeighbourModel

__all__ = [
    "MODELS",
    "LinkModel",
    "MetricModel",
    "MahalanobisModel",
    "FactorizationMachine",
    "WeightedNeighbourModel",
    "EuclideanModel",
    "CategoryTreeModel",
    "model_class",
]

MODELS: dict[str, type[LinkModel]] = {
    cls.name: cls
    for cls in (MahalanobisModel, FactorizationMachine, WeightedNeighbourModel, EuclideanModel, CategoryTreeModel)
}


def model_class(decoder: str) -> type[LinkModel]:
    """The model class registered as ``decoder`` (a :class:`UsageError` listing the choices otherwise)."""
    try:
        return MODELS[decoder]
    except KeyError:
        raise UsageError(f"unknown decoder {decoder!r}; choose one of {', '.join(MODELS)}.") from None
