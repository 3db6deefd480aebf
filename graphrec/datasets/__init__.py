"""Dataset generators: :mod:`graphrec.datasets.synthetic` writes catalogues with a known Bayes limit.

Import from the submodule (``from graphrec.datasets.synthetic import generate_catalogue``);
the package imports nothing eagerly so ``python -m graphrec.datasets.synthetic`` runs cleanly.
"""
