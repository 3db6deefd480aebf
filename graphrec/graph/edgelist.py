"""The passes of a build from a plain edge list (``build-graph --edges FILE``).

The edge list (:func:`graphrec.io.edges.read_edge_list`) gives the relations; the node
ids play the ASIN's role. Two ways to get the products:

* **edges alone**: every id of the file is a product with no metadata (empty title,
  brand, category; no image), in first-appearance order (features-file order with
  ``--features``, which keeps only the ids that have a feature record);
* **with --meta** (ids are ASINs): the metadata's products are the nodes, filtered by
  ``--category`` as usual; the metadata's own related lists are not read (the edge file
  is the graph), and edges to ids without a kept product are dropped as dangling.

Either way the interned ids and edge arrays are handed to the usual features, edges,
products and manifest passes of :mod:`graphrec.graph.build`.
"""

from __future__ import annotations

from array import array

import numpy as np

from graphrec.errors import DataError, UsageError
from graphrec.graph.catalogue import Catalogue
from graphrec.io.edges import read_edge_list
from graphrec.io.metadata import Product

__all__ = ["bare_products", "edge_list_source", "read_edges_into"]


def bare_products(ids: list[str]) -> Catalogue:
    """A catalogue whose products are ``ids`` with no metadata, in that order."""
    catalogue = Catalogue(None)
    for asin in ids:
        catalogue.add(Product(asin=asin), None)
    return catalogue


def read_edges_into(catalogue: Catalogue | None, path, relations: tuple[str, ...] | None,
                    relation_names: dict[str, str] | None, strict: bool):
    """Read the edge list at ``path`` and add its edges to ``catalogue`` (None: a catalogue
    of bare products, one per id). Returns ``(catalogue, edge_list)``; ``edge_list`` keeps
    the counts and messages, its arrays are released."""
    edges = read_edge_list(path, relation_names=relation_names, strict=strict)
    if relations is not None:
        missing = [name for name in relations if name not in edges.edges]
        if missing:
            raise UsageError(f"--relations names {', '.join(missing)}, which {path} does not have "
                             f"(it has: {', '.join(edges.edges)}).")
        edges.edges = {name: index for name, index in edges.edges.items() if name in relations}
    if catalogue is None:
        catalogue = bare_products(edges.ids)
        ids = np.arange(edges.num_nodes, dtype=np.int64)
    else:
        ids = np.fromiter((catalogue.intern(asin) for asin in edges.ids), dtype=np.int64, count=edges.num_nodes)
    if len(catalogue.ids) >= 2**31:
        raise DataError(f"{path} names more than 2^31 products; graphrec interns ids as int32.")
    for name, index in edges.edges.items():
        catalogue.present.add(name)
        catalogue.src[name] = array("i", ids[index[0]].astype(np.int32).tobytes())
        catalogue.dst[name] = array("i", ids[index[1]].astype(np.int32).tobytes())
    edges.edges = {name: index[:, :0] for name, index in edges.edges.items()}
    return catalogue, edges


def edge_list_source(edge_list, sha256: str) -> dict:
    """The manifest's ``sources.edges`` entry."""
    path = edge_list.path
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": sha256, "lines": edge_list.lines,
            "relation_labels": edge_list.labels, "bad_lines": edge_list.bad_lines, "self_loops": edge_list.self_loops}
