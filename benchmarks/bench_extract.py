"""Extraction throughput: the whole pipeline (decode in workers + AlexNet fc7 + chunked writes)
against the bare forward pass of the same network on the same batch size, in one run.

    python benchmarks/bench_extract.py [--images 512] [--batch-size 64] [--device cpu|cuda] [--workers N]

Images are synthetic products saved as 400x400 JPEGs (about the size of Amazon photos), so
decoding costs what it would on real data. Goal: pipeline >= 80% of the bare rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from graphrec.datasets.synthetic import draw_product_image
from graphrec.extract import default_workers, extract_features
from graphrec.vision import Fc7Extractor, RandomWeightsWarning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for k in range(args.images):
            picture = draw_product_image(k % 5, bool(k % 2), k % 3, rng.random(), 0.45, k % 3, rng.standard_normal(3), size=400)
            picture.save(folder / f"B{k:09d}.jpg", quality=90)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            extractor = Fc7Extractor("random", device=args.device)
        batch = torch.randn(args.batch_size, 3, 224, 224)
        extractor.forward(batch)  # warm-up
        if extractor.device.type == "cuda":
            batch = batch.pin_memory()
        repeats = max(2, args.images // args.batch_size)
        start = time.perf_counter()
        for _ in range(repeats):
            extractor.forward(batch)  # includes the copy back to numpy, as the pipeline does
        bare = repeats * args.batch_size / (time.perf_counter() - start)
        workers = default_workers() if args.workers is None else args.workers
        result = extract_features(folder, Path(tmp) / "f.b", extractor=extractor, batch_size=args.batch_size,
                                  workers=workers, quiet=True)
        pipeline = result.num_images / result.seconds
    print(f"device {args.device}, batch {args.batch_size}, {args.images} JPEG images 400x400, {workers} decode workers, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare forward pass : {bare:8.1f} images/s")
    print(f"pipeline          : {pipeline:8.1f} images/s  (end to end, incl. worker start-up and writing)")
    print(f"ratio             : {pipeline / bare:8.2%}  (goal >= 80%)")


if __name__ == "__main__":
    main()
