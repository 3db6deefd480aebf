"""Low-rank Mahalanobis style space (McAuley, Targett, Shi & van den Hengel, SIGIR 2015).

    s = encoder(product);   d(i, j) = ||s_i - s_j||^2;   P(edge) = sigmoid(c - d)

The paper's encoder is ``linear``: s = x Y with Y in R^{F x K}, learned jointly with the
shift ``c`` of the :class:`~graphrec.models.decoder.DistanceDecoder`. Features are
preprocessed before the projection and the preprocessing is part of the model (stored in
its ``state_dict``):

* ``"sqrt"`` (default): divide every value by the largest value seen on the training
  nodes, then take its signed square root (``sign(x) sqrt(|x|)``, the "power
  normalisation" long used on CNN activations). It damps the heavy tail of ReLU
  features, so a few strongly firing units no longer dominate distances. With the
  default weight-decay search it raised K = 10 test accuracy from 0.921 to 0.941 on the
  planted 4k benchmark (seeds 0-4), from 0.917 to 0.927 on its decaying spectrum and from
  0.766 to 0.785 on the bundled sample (seeds 0-2);
* ``"max"``: divide only (the authors' choice: 58.388599 on their fc7 files). With the
  L2 penalty on ``Y`` this acts like ridge regression on raw features;
* ``"std"``: divide each dimension by its standard deviation over the training nodes
  (dimensions that never vary keep scale 1); it gives rare dimensions equal say and
  overfits more (about 0.01 below "max" on the benchmark).

Other encoders (:func:`~graphrec.models.encoders.list_encoders`) make the style vectors
another way and keep the same decoder.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from torch import Tensor

from graphrec.errors import choose
from graphrec.models.base import MetricModel, TrainDefaults, options_not_taken
from graphrec.models.encoders import PREPROCESSING, get_encoder, list_encoders
from graphrec.models.inputs import NodeInputs
from graphrec.models.registry import register_model

__all__ = ["MahalanobisModel", "PREPROCESSING"]


@register_model
class MahalanobisModel(MetricModel):
    """An encoder's style space with the paper's decoder P(edge) = sigmoid(c - ||s_i - s_j||^2).

    >>> from graphrec.models.encoders import LinearEncoder
    >>> model = MahalanobisModel(LinearEncoder(feature_dim=4096, k=10))
    >>> model.embed_features(torch.rand(3, 4096)).shape
    torch.Size([3, 10])
    """

    name: ClassVar[str] = "mahalanobis"
    help: ClassVar[str] = "the paper's low-rank style space, made by --encoder"
    has_k: ClassVar[bool] = True
    shares_style: ClassVar[bool] = True
    #: A list of weight decays trains once per value and keeps the best on validation: with
    #: square-rooted features the best penalty was 1e-3 on the bundled sample and 0.3-1 on
    #: the planted 4k catalogue, too far apart for one default.
    defaults: ClassVar[TrainDefaults] = TrainDefaults(epochs=30, lr=0.003, weight_decay=(1e-3, 3e-2, 1.0))

    @classmethod
    def unknown_options(cls, options: dict[str, Any]) -> list[str]:
        encoder = get_encoder(options.get("encoder", "linear"))
        rest = {key: value for key, value in options.items() if key not in ("k", "seed", "encoder", "edge_index")}
        if encoder.needs_edges:  # it takes base and layers; the rest goes to its base (hybrid takes the most)
            encoder = get_encoder(rest.pop("base", None) or "hybrid")
            rest.pop("layers", None)
        return options_not_taken(encoder.build, rest)

    @classmethod
    def needs_features_for(cls, options: dict[str, Any]) -> bool:
        encoder = get_encoder(options.get("encoder", "linear"))
        if encoder.needs_edges:  # its base decides; the default base follows the graph
            return bool(options.get("base")) and get_encoder(options["base"]).needs_features
        return encoder.needs_features

    @classmethod
    def with_defaults(cls, options: dict[str, Any], has_features: bool) -> dict[str, Any]:
        """The encoder defaults to linear on a graph with features, lightgcn without; names
        are matched case-insensitively (``LightGCN`` is lightgcn)."""
        named = {key: choose(options[key], list_encoders(), key) for key in ("encoder", "base") if options.get(key)}
        return {**options, **named, "encoder": named.get("encoder") or ("linear" if has_features else "lightgcn")}

    @classmethod
    def needs_edges_for(cls, options: dict[str, Any]) -> bool:
        return get_encoder(options.get("encoder", "linear")).needs_edges

    @classmethod
    def defaults_for(cls, options: dict[str, Any]) -> TrainDefaults:
        return replace(cls.defaults, **get_encoder(options.get("encoder", "linear")).train_defaults)

    @classmethod
    def build(cls, inputs: NodeInputs, train_pairs: Tensor, train_labels: Tensor, k: int = 10, seed: int = 0,
              encoder: str = "linear", **encoder_options: Any) -> "MahalanobisModel":
        """``encoder_options`` go to that encoder's ``build`` (e.g. ``preprocessing`` for linear)."""
        model = cls(get_encoder(encoder).build(inputs, train_pairs, train_labels, k=k, seed=seed, **encoder_options))
        model.initialise(inputs, train_pairs, seed=seed)
        return model
