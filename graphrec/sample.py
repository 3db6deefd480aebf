"""Where the bundled sample lives and where commands write when given no paths.

With no path arguments every command works on the bundled sample, writing under
``./graphrec-sample/`` in the current directory, so a newcomer can run
``graphrec extract-features``, ``graphrec build-graph``, ``graphrec train`` and
``graphrec neighbours ASIN`` one after the other with no options at all.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_DIR", "SAMPLE_META", "SAMPLE_IMAGES", "WORK_DIR", "WORK_FEATURES", "WORK_GRAPH", "WORK_RUNS"]

SAMPLE_DIR = Path(__file__).resolve().parent / "datasets" / "sample"  # package data: installed with the wheel
SAMPLE_META = SAMPLE_DIR / "meta_sample.json.gz"  # Amazon 2014 format
SAMPLE_IMAGES = SAMPLE_DIR / "images"  # one image per ASIN, named ASIN.png

WORK_DIR = Path("graphrec-sample")  # relative to the current directory
WORK_FEATURES = WORK_DIR / "image_features.b"  # extract-features' default output
WORK_GRAPH = WORK_DIR / "graph"  # build-graph's default output
WORK_RUNS = WORK_DIR / "runs"  # train writes WORK_RUNS / f"{decoder}-k{k}" by default
