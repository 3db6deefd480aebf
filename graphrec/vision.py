"""AlexNet fc7 features for product images, with the network that made them recorded.

``Fc7Extractor(weights)`` builds torchvision's AlexNet and keeps it up to ``classifier.5``
(the ReLU after the second 4096-unit linear layer: "fc7" in the paper), in eval mode.
Images are preprocessed with the ImageNet weights' own transforms (resize 256, centre crop
224, ImageNet mean/std) whatever the weights, so features from different weights differ
only by the network.

``weights`` is one of

* ``"imagenet"`` -- torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` (downloaded once into
  the torch hub cache when online; offline it must already be cached);
* a path to a local ``state_dict`` of ``torchvision.models.alexnet``, loaded with
  ``torch.load(..., weights_only=True)``;
* ``"random"`` -- a seeded, untrained network for offline use and tests. Its features
  respond to colour and shape but are NOT ImageNet features; a warning says so;
* ``"auto"`` -- ``"imagenet"`` when cached, else ``"random"``.

:attr:`Fc7Extractor.spec` records which (``{"model", "layer", "weights", "seed", "path",
"sha256"}``); :meth:`Fc7Extractor.from_spec` rebuilds the same network from it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from graphrec.errors import DataError, UsageError
from graphrec.fs import sha256_file

__all__ = [
    "FC7_DIM",
    "RandomWeightsWarning",
    "Fc7Extractor",
    "preprocess_transform",
    "imagenet_cached",
    "resolve_weights",
]

FC7_DIM = 4096


class RandomWeightsWarning(UserWarning):
    """Features come from an untrained network."""


def preprocess_transform():
    """The ImageNet AlexNet weights' transforms: PIL RGB image -> normalised [3, 224, 224] tensor."""
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.transforms()


def imagenet_cached() -> bool:
    """True when torchvision's ImageNet AlexNet weights are already in the torch hub cache."""
    from torchvision.models import AlexNet_Weights

    name = Path(AlexNet_Weights.IMAGENET1K_V1.url).name
    return (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()


def resolve_weights(weights: str) -> str:
    """``"auto"`` becomes ``"imagenet"`` when cached, else ``"random"``; others pass through."""
    if weights == "auto":
        return "imagenet" if imagenet_cached() else "random"
    return weights


def _fc7_network(alexnet: torch.nn.Module) -> torch.nn.Module:
    """AlexNet up to and including ``classifier.5`` (dropouts are identities in eval mode)."""
    return torch.nn.Sequential(
        alexnet.features, alexnet.avgpool, torch.nn.Flatten(1), *list(alexnet.classifier.children())[:6]
    ).eval()


class Fc7Extractor:
    """AlexNet fc7 (post-ReLU) features: ``extract(images) -> float32 [n, 4096]``."""

    def __init__(self, weights: str | os.PathLike = "random", seed: int = 0, device: str = "cpu") -> None:
        from torchvision.models import AlexNet_Weights, alexnet

        self.device = torch.device(_check_device(device))
        weights = resolve_weights(str(weights))
        if weights == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = alexnet(weights=None)
            warnings.warn(
                f"--weights random: AlexNet with seeded random weights (seed {seed}); these fc7 features are NOT "
                "ImageNet features (use --weights imagenet or a local state_dict for real recommendations).",
                RandomWeightsWarning,
                stacklevel=2,
            )
            self.spec = _spec("random", seed=seed)
        elif weights == "imagenet":
            try:
                model = alexnet(weights=AlexNet_Weights.IMAGENET1K_V1, progress=False)
            except Exception as error:  # no network, proxy, corrupt download...
                raise UsageError(
                    f"could not load torchvision's ImageNet AlexNet weights ({type(error).__name__}: {error}); "
                    "they download once into the torch hub cache when online, otherwise use --weights random "
                    "or --weights PATH to a local alexnet state_dict."
                ) from None
            self.spec = _spec("imagenet")
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UsageError(
                    f"--weights {weights}: not 'imagenet', 'random' or 'auto', and no such file; "
                    "give a path to an alexnet state_dict saved with torch.save(model.state_dict(), PATH)."
                )
            model = alexnet(weights=None)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:
                raise DataError(f"weights file {path} could not be loaded as a state_dict ({error}).") from None
            if not isinstance(state, dict):
                raise DataError(f"weights file {path} holds a {type(state).__name__}, not a state_dict of tensors.")
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                first = str(error).splitlines()[0]
                raise DataError(f"weights file {path} is not a torchvision alexnet state_dict ({first}).") from None
            self.spec = _spec("file", path=str(path.resolve()), sha256=sha256_file(path))
        self.network = _fc7_network(model).to(self.device)
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.transform = preprocess_transform()

    @classmethod
    def from_spec(cls, spec: dict, device: str = "cpu") -> "Fc7Extractor":
        """The network described by a features sidecar's ``extractor`` entry."""
        if not isinstance(spec, dict) or spec.get("model") != "alexnet" or spec.get("layer") != "fc7":
            raise UsageError(f"the features were not made by graphrec's AlexNet fc7 extractor (spec {spec}); "
                             "cannot compute matching features for a new image.")
        kind = spec.get("weights")
        if kind == "random":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RandomWeightsWarning)
                seed = spec.get("seed")
                if not isinstance(seed, (int, type(None))) or isinstance(seed, bool):
                    raise UsageError(f"the features' sidecar records the seed {seed!r}, not an integer; re-extract the features.")
                return cls("random", seed=seed or 0, device=device)
        if kind == "imagenet":
            return cls("imagenet", device=device)
        if kind == "file":
            path = spec.get("path")
            if not isinstance(path, str) or not path or not Path(path).is_file():
                raise UsageError(f"the features were made with the weights file {path}, which is no longer there; "
                                 "restore it to compute matching features.")
            if spec.get("sha256") and sha256_file(path) != spec["sha256"]:
                raise UsageError(f"the weights file {path} changed since the features were extracted "
                                 "(SHA-256 differs); re-extract the features or restore the file.")
            return cls(path, device=device)
        raise UsageError(f"unknown extractor weights {kind!r} in the features' sidecar.")

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """fc7 of an already preprocessed ``[n, 3, 224, 224]`` batch, as float32 numpy."""
        out = self.network(batch.to(self.device, non_blocking=True))
        return out.float().cpu().numpy()

    def extract(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        """fc7 features of PIL images (any mode; converted to RGB): float32 ``[n, 4096]``."""
        from graphrec.io.images import to_rgb

        rows = [np.empty((0, FC7_DIM), dtype=np.float32)]
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.transform(to_rgb(im)) for im in images[start:start + batch_size]])
            rows.append(self.forward(batch))
        return np.concatenate(rows)

    def extract_paths(self, paths: Iterable[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        """fc7 features of image files; an unreadable file raises :class:`DataError` naming it."""
        from graphrec.io.images import open_image

        return self.extract([open_image(p) for p in paths], batch_size=batch_size)


def _spec(weights: str, seed: int | None = None, path: str | None = None, sha256: str | None = None) -> dict:
    return {"model": "alexnet", "layer": "fc7", "weights": weights, "seed": seed, "path": path, "sha256": sha256}


def _check_device(device: str) -> str:
    from graphrec.device import resolve_device

    return resolve_device(device)
