"""The model registry (torchvision ``models/_api.py`` style): each model class carries its
own facts (``name``, ``help``, ``has_k``, training ``defaults``) and registers itself;
the CLI, training and the sweep read them from here.

>>> list_models()
['mahalanobis', 'fm', 'wnn', 'euclidean', 'category-tree']
>>> get_model("fm").has_k
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphrec.errors import choose

if TYPE_CHECKING:
    from graphrec.models.base import LinkModel

__all__ = ["register_model", "list_models", "get_model", "models_help"]

_MODELS: dict[str, type["LinkModel"]] = {}


def register_model(cls: type["LinkModel"]) -> type["LinkModel"]:
    """Class decorator: make ``cls`` available as ``--decoder cls.name``."""
    if cls.name in _MODELS and _MODELS[cls.name] is not cls:
        raise ValueError(f"two models are registered as {cls.name!r}")
    _MODELS[cls.name] = cls
    return cls


def list_models(has_k: bool | None = None) -> list[str]:
    """Registered model names in registration order (only those with/without a K when given)."""
    return [name for name, cls in _MODELS.items() if has_k is None or cls.has_k == has_k]


def get_model(name: str) -> type["LinkModel"]:
    """The model class registered as ``name`` (a :class:`UsageError` listing the choices otherwise)."""
    return _MODELS[choose(name, _MODELS, "decoder")]


def models_help() -> str:
    """"name (help), ..." for option help texts."""
    return ", ".join(f"{name} ({cls.help})" for name, cls in _MODELS.items()) + "."
