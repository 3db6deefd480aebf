"""Dataset generators: :mod:`graphrec.datasets.synthetic` writes catalogues with a known Bayes limit."""

from graphrec.datasets.synthetic import SyntheticCatalogue, generate_catalogue

__all__ = ["SyntheticCatalogue", "generate_catalogue"]
