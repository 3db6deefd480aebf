"""Model inputs built once from a graph: the bridge between storage and models.

:func:`node_inputs` turns a :class:`~graphrec.graph.Graph` into the
:class:`~graphrec.models.inputs.NodeInputs` every model reads: its feature matrix (the
memory map itself, wrapped) and the product table's non-visual fields parsed once
(category paths, brand, price bucket), so that no model touches pandas rows or files.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from graphrec.graph import Graph
from graphrec.models.inputs import NodeFeatures, NodeInputs, ProductFields

__all__ = ["PRICE_EDGES", "node_inputs", "product_fields", "category_paths"]

PRICE_EDGES = (5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 250, 500)  # dollars


def category_paths(categories: object, category: object) -> list[list[str]]:
    """A product's category paths as lists of levels: the ``categories`` JSON list, else
    the single ``category`` path (``|``-separated)."""
    paths: list[str] = []
    if isinstance(categories, str) and categories:
        try:
            loaded = json.loads(categories)
        except json.JSONDecodeError:
            loaded = None
        paths = [p for p in loaded if isinstance(p, str)] if isinstance(loaded, list) else []
    if not paths and isinstance(category, str) and category:
        paths = [category]
    return [[level for level in path.split("|") if level] for path in paths]


def _brand(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _price_bucket(value: object) -> int | None:
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(price) or price < 0:
        return None
    return int(np.searchsorted(PRICE_EDGES, price, side="right"))


def product_fields(products: pd.DataFrame) -> ProductFields:
    """Every row's fields, parsed column by column (missing columns are unknown fields)."""
    n = len(products)

    def column(name: str) -> list:
        return products[name].tolist() if name in products else [None] * n

    paths = [category_paths(many, one) for many, one in zip(column("categories"), column("category"))]
    return ProductFields(paths, [_brand(v) for v in column("brand")], [_price_bucket(v) for v in column("price")])


def node_inputs(graph: Graph) -> NodeInputs:
    """The :class:`NodeInputs` of ``graph``: its (memory-mapped) features and parsed fields."""
    features = NodeFeatures(graph.features) if graph.features is not None else None
    return NodeInputs(graph.num_nodes, features, lambda: product_fields(graph.products), source=f"the graph {graph.path}")
