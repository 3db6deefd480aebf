"""Link-prediction models: one per file, all :class:`~graphrec.models.base.LinkModel`.

Each model registers itself (:mod:`graphrec.models.registry`): :func:`list_models` names
them, :func:`get_model` looks one up with a clear error. Metric models are an encoder
(:mod:`graphrec.models.encoders`) followed by the one distance decoder
(:mod:`graphrec.models.decoder`). Models read :class:`NodeInputs`, never a graph.
"""

from __future__ import annotations

# isort: off
# importing a model's module registers it: this order is the order of list_models() and the help texts
from graphrec.models.mahalanobis import MahalanobisModel
from graphrec.models.fm import FactorizationMachine
from graphrec.models.wnn import WeightedNeighbourModel
from graphrec.models.euclidean import EuclideanModel
from graphrec.models.category_tree import CategoryTreeModel
from graphrec.models.collaborative import EmbeddingEncoder, HybridEncoder
from graphrec.models.propagation import LightGCNEncoder, SAGEEncoder
# isort: on
from graphrec.models.base import LinkModel, MetricModel, TrainDefaults
from graphrec.models.decoder import DistanceDecoder
from graphrec.models.encoders import Encoder, LinearEncoder, get_encoder, list_encoders
from graphrec.models.inputs import NodeFeatures, NodeInputs, ProductFields
from graphrec.models.registry import get_model, list_models, models_help

__all__ = [
    "LinkModel", "MetricModel", "TrainDefaults", "DistanceDecoder",
    "Encoder", "LinearEncoder", "EmbeddingEncoder", "HybridEncoder", "LightGCNEncoder", "SAGEEncoder",
    "get_encoder", "list_encoders",
    "NodeFeatures", "NodeInputs", "ProductFields",
    "MahalanobisModel", "FactorizationMachine", "WeightedNeighbourModel", "EuclideanModel", "CategoryTreeModel",
    "get_model", "list_models", "models_help", "model_class", "MODELS",
]

#: name -> class, in registration order (the registry's view, kept for existing callers)
MODELS = {name: get_model(name) for name in list_models()}
model_class = get_model
