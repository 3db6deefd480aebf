"""The ``extract-features`` pipeline: product images -> AlexNet fc7 -> McAuley ``.b`` file.

Images come from a folder of files named by ASIN (``B000123456.jpg``; ``.jpg``, ``.jpeg``,
``.png``, ``.webp`` in any case) or from a CSV manifest with ``asin,path`` columns (relative
paths are relative to the CSV). They are decoded and preprocessed in DataLoader worker
processes, so the network never waits on JPEG decoding.

Output (contract 2): ``OUT`` in McAuley's ``.b`` format (10-byte ASIN + 4096 float32 per
record, in processing order) and ``OUT.json``: ``{"extractor": SPEC, "images_dir",
"image_manifest", "num_images", "skipped": {reason: count}}`` plus ``"skipped_images":
{asin: reason}`` so that a rerun does not retry images known to be unreadable.

Resuming: results are written as numbered chunk files ``OUT.parts/part-<rank>-<n>.b``
(each followed by a small ``.json`` that marks it complete and lists the images skipped in
it). A killed run started again with the same command skips every ASIN already in a
complete chunk; the final file is assembled in the order of the image list (sorted ASINs,
or the manifest's order) under a temporary name and renamed into place, then the parts are
removed. An unreadable image is reported by path, skipped and counted.

Under ``torchrun`` each rank extracts a disjoint block of the remaining images into its own
chunks, and rank 0 assembles the file after a barrier: the same bytes as a single-process
run, and a killed rank's finished chunks are kept for the next start.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from graphrec.distributed import distributed_context
from graphrec.errors import DataError, UsageError
from graphrec.fs import atomic_write, progress_bar, write_text_atomic
from graphrec.io.features import BinaryFeatureWriter, record_dtype
from graphrec.io.images import open_image, scan_images, valid_asin
from graphrec.sample import SAMPLE_IMAGES, WORK_FEATURES
from graphrec.vision import FC7_DIM, Fc7Extractor, preprocess_transform

__all__ = ["ImageItem", "ExtractResult", "list_images", "read_manifest", "extract_features", "default_workers"]

PARTS_SUFFIX = ".parts"
MAX_REPORTED = 20


@dataclass(frozen=True)
class ImageItem:
    asin: str
    path: Path


@dataclass
class ExtractResult:
    """What one ``extract-features`` run did."""

    path: Path
    sidecar_path: Path
    num_images: int  # records in the output file
    skipped: dict[str, int]  # reason -> count (whole file, including earlier runs)
    problems: list[str]  # one sentence per skipped image (this run), by path
    spec: dict
    extracted: int  # images computed in this run
    resumed: int  # images found done from an earlier run
    seconds: float
    up_to_date: bool = False

    @property
    def images_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else 0.0


def list_images(images_dir: str | os.PathLike) -> tuple[list[ImageItem], Counter, list[str]]:
    """Images in ``images_dir`` named ``<ASIN>.<jpg|jpeg|png|webp>``, sorted by ASIN
    (:func:`graphrec.io.images.scan_images`): ``(items, skipped, problems)``."""
    root = Path(images_dir)
    if not root.is_dir():
        raise UsageError(f"image folder {root} does not exist; give --images DIR (files named <ASIN>.jpg) or --manifest CSV.")
    found, skipped, problems = scan_images(root)
    return [ImageItem(asin, path) for asin, path in found.items()], skipped, problems


def read_manifest(manifest: str | os.PathLike) -> tuple[list[ImageItem], Counter, list[str]]:
    """``asin,path`` rows of a CSV (header required); relative paths are relative to the CSV."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise UsageError(f"manifest {manifest} does not exist; give a CSV with columns asin,path.")
    skipped: Counter = Counter()
    problems: list[str] = []
    items: dict[str, Path] = {}
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"asin", "path"} <= {f.strip().lower() for f in reader.fieldnames}:
            raise DataError(f"{manifest}, line 1: the header must name the columns asin and path (found {reader.fieldnames}).")
        names = {f.strip().lower(): f for f in reader.fieldnames}
        for row in reader:
            line = reader.line_num
            asin = (row.get(names["asin"]) or "").strip()
            raw = (row.get(names["path"]) or "").strip()
            if not valid_asin(asin) or not raw:
                skipped["bad_row"] += 1
                problems.append(f"{manifest}, line {line}: needs an ASIN (at most 10 ASCII characters) and a path; skipped")
                continue
            if asin in items:
                skipped["duplicate"] += 1
                problems.append(f"{manifest}, line {line}: ASIN {asin} listed again; skipped")
                continue
            path = Path(raw).expanduser()
            items[asin] = path if path.is_absolute() else manifest.parent / path
    return [ImageItem(a, p) for a, p in items.items()], skipped, problems


class _ImageDataset(Dataset):
    """Decodes and preprocesses one image; a bad image yields ``ok=False`` and its message."""

    def __init__(self, items: list[ImageItem]) -> None:
        self.items = items
        self.transform = preprocess_transform()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            tensor = self.transform(open_image(item.path))
            return index, tensor, ""
        except DataError as error:
            reason = "too_large" if type(error).__name__ == "ImageTooLarge" else "unreadable"
            return index, None, f"{reason}\t{error}"


def _collate(batch):
    indices = [b[0] for b in batch]
    good = [b for b in batch if b[1] is not None]
    tensor = torch.stack([b[1] for b in good]) if good else torch.empty(0, 3, 224, 224)
    return indices, [b[0] for b in good], tensor, [(b[0], b[2]) for b in batch if b[1] is None]


def default_workers(processes: int = 1) -> int:
    """Decoding workers per process: the cores left after one per network process
    (``processes`` extraction processes on this machine), at most 8, 0 on a single core."""
    return max(0, min(8, (os.cpu_count() or 1) // max(processes, 1) - 1))


def _chunk_name(rank: int, number: int) -> str:
    return f"part-{rank:03d}-{number:05d}"


def _parts_state(parts: Path, rank: int = 0) -> tuple[set[str], dict[str, str], int]:
    """ASINs done (extracted or skipped) in complete chunks of every rank, skipped ASIN ->
    reason, and the next chunk number of ``rank``. A chunk counts once its ``.json``
    marker exists; a ``.b`` without marker (a killed writer) is ignored here and removed
    by :func:`_clean_parts`."""
    done: set[str] = set()
    skipped: dict[str, str] = {}
    number = 0
    for marker in sorted(parts.glob("part-*.json")):
        info = json.loads(marker.read_text())
        chunk = marker.with_suffix(".b")
        if chunk.is_file():
            done.update(_chunk_asins(chunk, info["dim"]))
        for asin, reason in info["skipped"].items():
            done.add(asin)
            skipped[asin] = reason
        fields = marker.stem.split("-")
        if len(fields) == 3 and int(fields[1]) == rank:
            number = max(number, int(fields[2]) + 1)
    return done, skipped, number


def _clean_parts(parts: Path) -> None:
    """Remove what killed writers left: chunks without a marker and temporary files."""
    for orphan in parts.glob("part-*.b"):
        if not orphan.with_suffix(".json").is_file():
            orphan.unlink(missing_ok=True)
    for scratch in parts.glob(".part-*.tmp*"):  # graphrec.fs.atomic_write's temporary names
        scratch.unlink(missing_ok=True)


def _chunk_asins(chunk: Path, dim: int) -> list[str]:
    if chunk.stat().st_size == 0:
        return []
    records = np.memmap(chunk, dtype=record_dtype(dim), mode="r")
    return [a.decode("ascii").strip() for a in records["asin"]]


def _progress(quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    return progress_bar(
        TextColumn("extracting fc7"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} images/s"), TimeRemainingColumn(), quiet=quiet, transient=False,
    )


def _prepare(out: Path, parts: Path, items: list[ImageItem], spec: dict, source: dict) -> bool:
    """Before extracting (rank 0 only): True when ``out`` is already complete for these
    images and this network. Otherwise a finished file from the same network becomes the
    first chunk, the run's identity is recorded in ``parts/extractor.json`` (a different
    interrupted run is refused) and leftovers of killed writers are removed."""
    sidecar_path = Path(str(out) + ".json")
    if out.is_file() and not parts.exists():
        previous = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
        if previous.get("extractor") == spec and {k: previous.get(k) for k in source} == source:
            whole = out.stat().st_size % record_dtype(FC7_DIM).itemsize == 0
            have = set(_chunk_asins(out, FC7_DIM)) if whole else set()
            bad = dict(previous.get("skipped_images", {}))
            if {item.asin for item in items} <= have | set(bad):
                return True
            parts.mkdir(parents=True)
            os.replace(out, parts / f"{_chunk_name(0, 0)}.b")
            write_text_atomic(parts / f"{_chunk_name(0, 0)}.json", json.dumps({"dim": FC7_DIM, "skipped": bad}))
    parts.mkdir(parents=True, exist_ok=True)
    state_file = parts / "extractor.json"
    state = {"extractor": spec, **source}
    if state_file.is_file() and json.loads(state_file.read_text()) != state:
        raise UsageError(
            f"{parts} holds an interrupted run with other weights or images ({state_file}); rerun that "
            f"command to finish it, or delete {parts} to start again."
        )
    write_text_atomic(state_file, json.dumps(state, indent=2))
    _clean_parts(parts)
    return False


def _extract_shard(todo: list[ImageItem], parts: Path, rank: int, number: int, extractor: Fc7Extractor,
                   batch_size: int, workers: int, chunk_images: int, progress_total: int, progress_done: int,
                   quiet: bool, stop_after_chunks: int | None) -> tuple[int, dict[str, str], list[str]]:
    """Extract ``todo`` into this rank's chunks ``part-<rank>-<n>``; returns (images
    extracted, ASIN -> skip reason, one problem sentence per skipped image)."""
    extracted = 0
    skips: dict[str, str] = {}
    problems: list[str] = []
    if not todo:
        return extracted, skips, problems
    loader = DataLoader(
        _ImageDataset(todo), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=_collate, pin_memory=extractor.device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
    )
    pending_asins: list[str] = []
    pending_rows: list[np.ndarray] = []
    pending_skips: dict[str, str] = {}
    chunks_written = 0

    def flush() -> None:
        nonlocal number, chunks_written
        chunk = parts / f"{_chunk_name(rank, number)}.b"

        def write_chunk(tmp: Path) -> None:
            with BinaryFeatureWriter(tmp, dim=FC7_DIM) as writer:
                if pending_asins:
                    writer.write(pending_asins, np.concatenate(pending_rows))

        atomic_write(chunk, write_chunk)
        write_text_atomic(chunk.with_suffix(".json"), json.dumps({"dim": FC7_DIM, "skipped": pending_skips}))
        number += 1
        chunks_written += 1
        pending_asins.clear()
        pending_rows.clear()
        pending_skips.clear()

    with _progress(quiet) as progress:
        task = progress.add_task("extract", total=progress_total, completed=progress_done, rate=0.0)
        t0 = time.perf_counter()
        for _, good, batch, bad in loader:
            for index, message in bad:
                reason, text = message.split("\t", 1)
                pending_skips[todo[index].asin] = reason
                skips[todo[index].asin] = reason
                problems.append(text + " Skipped.")
            if len(good):
                pending_rows.append(extractor.forward(batch))
                pending_asins.extend(todo[i].asin for i in good)
            extracted += len(good)
            progress.update(task, advance=len(good) + len(bad),
                            rate=extracted / max(time.perf_counter() - t0, 1e-9))
            if len(pending_asins) + len(pending_skips) >= chunk_images:
                flush()
                if stop_after_chunks is not None and chunks_written >= stop_after_chunks:
                    raise KeyboardInterrupt("stopped after the requested number of chunks")
        if pending_asins or pending_skips:
            flush()
    return extracted, skips, problems


def _assemble(out: Path, parts: Path, items: list[ImageItem]) -> tuple[Path, int]:
    """Write every listed image's record from the complete chunks into ``out.tmp`` in
    the order of ``items`` (the single-process order, whatever rank or run made each
    chunk). Returns (that temporary file, the number of records)."""
    position = {item.asin: i for i, item in enumerate(items)}
    dtype = record_dtype(FC7_DIM)
    chunks: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    for marker in sorted(parts.glob("part-*.json")):
        chunk = marker.with_suffix(".b")
        if not chunk.is_file() or chunk.stat().st_size == 0:
            continue
        records = np.memmap(chunk, dtype=dtype, mode="r")
        where = np.array([position.get(a.decode("ascii").strip(), -1) for a in records["asin"]], dtype=np.int64)
        rows = np.arange(len(records), dtype=np.int64)
        keys.append(np.stack([where, np.full(len(records), len(chunks), dtype=np.int64), rows], axis=1))
        chunks.append(records)
    table = np.concatenate(keys) if keys else np.empty((0, 3), dtype=np.int64)
    table = table[table[:, 0] >= 0]
    table = table[np.argsort(table[:, 0], kind="stable")]
    if len(table):  # an image found in two chunks (never expected) is written once
        table = table[np.concatenate([[True], np.diff(table[:, 0]) != 0])]
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as target:
        start = 0
        while start < len(table):  # runs of consecutive rows of one chunk are copied as one block
            stop = start + 1
            while stop < len(table) and table[stop, 1] == table[start, 1] and table[stop, 2] == table[stop - 1, 2] + 1:
                stop += 1
            target.write(chunks[int(table[start, 1])][int(table[start, 2]) : int(table[stop - 1, 2]) + 1].tobytes())
            start = stop
    del chunks
    return tmp, len(table)


def extract_features(
    images: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    weights: str | os.PathLike = "auto",
    seed: int = 0,
    batch_size: int = 64,
    workers: int | None = None,
    device: str = "cpu",
    chunk_images: int | None = None,
    quiet: bool = False,
    extractor: Fc7Extractor | None = None,
    stop_after_chunks: int | None = None,
    distributed: bool | None = None,
) -> ExtractResult:
    """Extract fc7 features of every image into ``out`` (``.b`` + ``.json`` sidecar), resumably.

    With neither ``images`` nor ``manifest``, the bundled sample's images are used; ``out``
    defaults to ``graphrec-sample/image_features.b``. ``chunk_images`` (default 16 batches)
    is how much a killed run can lose. ``stop_after_chunks`` stops early, as a kill would
    (tests). Returns an :class:`ExtractResult`.

    Under ``torchrun`` (``distributed`` None detects it, True requires it) every rank
    extracts a disjoint block of the images not yet done into its own chunks
    ``OUT.parts/part-<rank>-<n>.b``; after a barrier rank 0 assembles ``OUT`` in the
    single-process order, so the file is the same whatever the number of processes. A
    run killed on any rank, started again (with any number of processes), redoes none of
    the chunks already finished. Every rank returns the same result. The images folder and
    ``OUT`` must be on a filesystem that every rank sees.
    """
    started = time.perf_counter()
    if images is not None and manifest is not None:
        raise UsageError("give either --images DIR or --manifest CSV, not both.")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}.")
    if images is None and manifest is None:
        images = SAMPLE_IMAGES
    out = Path(out) if out is not None else WORK_FEATURES
    if out.is_dir():
        raise UsageError(f"output {out} is a directory; give a file name such as {out / 'image_features.b'}.")
    if manifest is not None:
        items, skipped, problems = read_manifest(manifest)
        source = {"images_dir": None, "image_manifest": str(Path(manifest).resolve())}
    else:
        items, skipped, problems = list_images(images)
        source = {"images_dir": str(Path(images).resolve()), "image_manifest": None}
    if not items:
        where = manifest if manifest is not None else images
        raise UsageError(f"no images found in {where} (files named <ASIN>.jpg/.jpeg/.png/.webp, or asin,path rows).")

    # coordination needs no tensors on the GPU: gloo, whatever device the network runs on
    with distributed_context(distributed, device="cpu") as ctx:
        if ctx.enabled and extractor is None and str(device) == "cuda":
            device = f"cuda:{ctx.local_rank}"
        extractor = extractor or Fc7Extractor(weights, seed=seed, device=device)
        spec = extractor.spec
        sidecar_path = Path(str(out) + ".json")
        parts = Path(str(out) + PARTS_SUFFIX)

        if ctx.on_main(_prepare, out, parts, items, spec, source):
            previous = json.loads(sidecar_path.read_text())
            return ExtractResult(out, sidecar_path, int(previous.get("num_images", 0)), dict(previous.get("skipped", {})),
                                 problems, spec, 0, len(items) - len(previous.get("skipped_images", {})),
                                 time.perf_counter() - started, up_to_date=True)

        done, _, number = _parts_state(parts, ctx.rank)
        ctx.barrier()  # every rank has read the same finished set before anyone writes a new chunk
        todo = [item for item in items if item.asin not in done]
        resumed = len(items) - len(todo)
        mine = ctx.shard(todo)
        workers = default_workers(ctx.local_world_size) if workers is None else workers
        extracted, _, run_problems = _extract_shard(
            mine, parts, ctx.rank, number, extractor, batch_size, workers, chunk_images or 16 * batch_size,
            resumed + len(mine), resumed, quiet or not ctx.is_main, stop_after_chunks)
        (extracted,) = ctx.all_reduce_sum(extracted)
        problems += [line for rank_lines in ctx.all_gather_object(run_problems) for line in rank_lines]

        def finish() -> tuple[int, dict[str, int]]:
            tmp, total = _assemble(out, parts, items)
            listed = {item.asin for item in items}
            _, skipped_all, _ = _parts_state(parts)
            bad_images = {a: r for a, r in sorted(skipped_all.items()) if a in listed}
            all_skips = dict(sorted((skipped + Counter(bad_images.values())).items()))
            sidecar = {"extractor": spec, **source, "num_images": total, "skipped": all_skips,
                       "skipped_images": bad_images}
            # Never let a sidecar describe another network's file: drop the old sidecar, move
            # the file into place, then write the new sidecar (a missing sidecar means
            # "network unknown", never a wrong one). Until OUT.parts is gone (last),
            # build-graph refuses the output and the same command finishes the job.
            sidecar_path.unlink(missing_ok=True)
            os.replace(tmp, out)
            write_text_atomic(sidecar_path, json.dumps(sidecar, indent=2) + "\n")
            shutil.rmtree(parts, ignore_errors=True)
            return total, all_skips

        ctx.barrier()  # every rank's chunks are complete
        total, all_skips = ctx.on_main(finish)
    return ExtractResult(out, sidecar_path, total, all_skips, problems, spec, int(extracted), resumed,
                         time.perf_counter() - started)
