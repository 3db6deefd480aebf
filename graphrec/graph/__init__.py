"""The product graph: build it from the readers' output, store it as GRAPH_DIR, load it back.

* :mod:`graphrec.graph.store`       :class:`Graph` and :func:`load_graph` (the GRAPH_DIR layout)
* :mod:`graphrec.graph.build`       :func:`build_graph`, a pipeline of named passes
* :mod:`graphrec.graph.catalogue`   the metadata pass (ASINs interned as int ids)
* :mod:`graphrec.graph.features`    the features pass (``.b`` -> features.npy)
* :mod:`graphrec.graph.outliers`    feature rows far beyond the rest; is a scaling dominated by them?
* :mod:`graphrec.graph.edges`       canonical edge lists
* :mod:`graphrec.graph.categories`  ``|``-separated category paths
* :mod:`graphrec.graph.builddir`    the temporary build directory, its lock and clean-up
"""

from graphrec.graph.build import BuildResult, build_graph
from graphrec.graph.builddir import clean_stale_builds
from graphrec.graph.categories import join_category, split_category
from graphrec.graph.edges import canonical_edges
from graphrec.graph.outliers import scaling_warning
from graphrec.graph.store import FORMAT_VERSION, NODE_TYPE, Graph, load_graph, manifest_checksum, manifest_fingerprint
from graphrec.io.features import read_sidecar
from graphrec.io.images import find_images

__all__ = [
    "FORMAT_VERSION",
    "NODE_TYPE",
    "BuildResult",
    "Graph",
    "build_graph",
    "canonical_edges",
    "clean_stale_builds",
    "find_images",
    "join_category",
    "load_graph",
    "manifest_checksum",
    "manifest_fingerprint",
    "read_sidecar",
    "scaling_warning",
    "split_category",
]
