"""graphrec: graph-based fashion recommendation (McAuley et al., SIGIR 2015, rebuilt on PyTorch Geometric)."""

__version__ = "0.1.0"
