"""Commands that make the inputs: build-graph, info, extract-features (io -> graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graphrec.cli.core import app, console, err_console, one_line_errors, threads_option
from graphrec.cli.options import list_options, one_of, split_list
from graphrec.cli.output import print_graph_summary, print_run_summary


@app.command("build-graph", cls=list_options(names=["--relations"]))
@one_line_errors
def build_graph_command(
    meta: Optional[Path] = typer.Option(
        None, "--meta", help="Amazon metadata file, 2014 (Python literals) or 2018 (JSON lines) dump, plain or .gz. "
        "Default: the bundled sample (graphrec/datasets/sample/meta_sample.json.gz inside the package)."),
    features: Optional[Path] = typer.Option(
        None, "--features", help="McAuley .b image features (10-byte ASIN + float32 x dim per record). Default: none, "
        "except with the sample metadata, where graphrec-sample/image_features.b is used when it exists."),
    out: Optional[Path] = typer.Option(
        None, "-o", "--out", help="GRAPH_DIR to write (must not exist unless --force). Default: graphrec-sample/graph."),
    category: Optional[str] = typer.Option(
        None, "--category", help="Keep products with a category path starting with this '|'-separated prefix, "
        "e.g. 'Clothing, Shoes & Jewelry|Men'."),
    relations: Optional[str] = typer.Option(
        None, "--relations", help="Relations to keep, space- or comma-separated (also_bought, also_viewed, bought_together, "
        "buy_after_viewing). Default: every relation present in the metadata."),
    meta_format: str = typer.Option("auto", "--format", help="Metadata format: auto (detect from the first line), 2014 or 2018."),
    feature_dim: int = typer.Option(4096, "--feature-dim", help="Values per record in the .b file (4096 for AlexNet fc7)."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage type of features.npy: float16 (half the disk) or float32."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Directory of product images named <ASIN>.jpg/.jpeg/.png/.webp, recorded as image_path. "
        "Default: the images_dir of the features' JSON sidecar, if any (the sample's images for the sample)."),
    no_features: bool = typer.Option(False, "--no-features", help="Build from the metadata only, even when sample features exist."),
    edges: Optional[Path] = typer.Option(None, "--edges", help="A plain edge list ('u v' or 'relation u v' per line, whitespace or commas, # comments) giving the relations instead of the metadata's related lists; its ids are the products (ASINs when combined with --meta/--features). See docs/collaborative.md."),
    relation_names: Optional[str] = typer.Option(None, "--relation-names", help="Rename the edge list's relation labels, e.g. 1=also_bought,2=also_viewed (the default when the labels are exactly GATNE's 1 and 2; other labels are kept as written)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first malformed metadata line or bad feature record instead of skipping it."),
    keep_extreme: bool = typer.Option(False, "--keep-extreme", help="Keep feature records whose values are far beyond the rest (largest |value| above 1000 x the 90th percentile of the records' largest); by default they are dropped and counted like NaN records."),
    force: bool = typer.Option(False, "--force", help="Replace an existing GRAPH_DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no summary table."),
) -> None:
    """Build a product graph (GRAPH_DIR) from Amazon metadata and optional image features.

    Nodes are the products of --meta (first record of a repeated ASIN) inside --category
    that have features when --features is given; one undirected edge set per relation.
    Prints a summary: nodes, edges, components, degrees and every dropped count.
    """
    from graphrec import sample
    from graphrec.errors import UsageError
    from graphrec.graph import build_graph
    from graphrec.io.edges import parse_relation_names

    if meta is None and edges is None:
        if not sample.SAMPLE_META.is_file():
            raise UsageError(f"the bundled sample {sample.SAMPLE_META} is missing from this installation; pass --meta FILE.")
        meta = sample.SAMPLE_META
        if features is None and sample.WORK_FEATURES.is_file():
            features = sample.WORK_FEATURES
        if images is None and sample.SAMPLE_IMAGES.is_dir():
            images = sample.SAMPLE_IMAGES
    if no_features:
        features = None
    result = build_graph(
        meta, out or sample.WORK_GRAPH, features, category=category,
        relations=split_list(relations) or None, meta_format=meta_format,
        feature_dim=feature_dim, dtype=dtype, images=images, strict=strict, force=force, quiet=quiet,
        edges=edges, relation_names=parse_relation_names(relation_names), keep_extreme=keep_extreme,
    )
    for message in result.warnings:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    if not quiet:
        print_graph_summary(f"graph written to {result.path}", result.manifest, result.manifest["stats"])
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


@app.command("info")
@one_line_errors
def info_command(
    path: Optional[Path] = typer.Argument(None, help="GRAPH_DIR written by build-graph or RUN_DIR written by train. Default: graphrec-sample/graph.", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON (a graph's manifest and freshly computed statistics; a run's settings and metrics)."),
) -> None:
    """Summarise a graph (nodes, edges per relation, components, degrees, drops) or a
    trained run (decoder, encoder, K, graph, epochs, time, validation and test metrics)."""
    import json

    from graphrec import sample
    from graphrec.runinfo import is_run_dir, run_summary

    if path is not None and is_run_dir(path):
        summary = run_summary(path)
        if as_json:
            print(json.dumps(summary, indent=2, ensure_ascii=False))
        else:
            print_run_summary(summary)
        return
    from graphrec.graph import load_graph
    from graphrec.stats import graph_stats

    graph = load_graph(path or sample.WORK_GRAPH)
    stats = graph_stats(graph.num_nodes, graph.edges)
    if as_json:
        print(json.dumps({**graph.manifest, "stats": stats}, indent=2, ensure_ascii=False))
    else:
        print_graph_summary(f"graph {graph.path}", graph.manifest, stats)


# --- extract-features (images -> features) -------------------------------------------


@app.command("extract-features")
@one_line_errors
def extract_features_command(
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of product images named <ASIN>.jpg/.jpeg/.png/.webp (any case). Default: the bundled sample's images."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="CSV with columns asin,path (paths relative to the CSV), instead of --images."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Features file to write (McAuley .b, plus OUT.json naming the network). Default: graphrec-sample/image_features.b."),
    output: Optional[Path] = typer.Option(None, "--output", hidden=True, help="Old spelling of --out."),
    weights: str = typer.Option("auto", "--weights", help="imagenet (torchvision's weights; must be cached when offline), PATH to an alexnet state_dict, random (seeded untrained network: not ImageNet features), or auto (imagenet when cached, else random)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the network for --weights random."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader processes decoding images (0 = in this process). Default: CPU cores - 1, at most 8."),
    device: str = typer.Option("cpu", "--device", help="cpu, or cuda when a GPU is available (under torchrun: each process uses the GPU of its LOCAL_RANK)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    distributed: Optional[bool] = typer.Option(
        None, "--distributed/--no-distributed", help="Share the images among torchrun's processes (each extracts "
        "its own block, rank 0 writes OUT). Default: on when started by torchrun with several processes; "
        "--distributed fails outside torchrun."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Compute AlexNet fc7 features (4096-d, after ReLU) for product images.

    Resumable: a killed run keeps finished chunks in OUT.parts/ and the same command
    continues from there. Unreadable images are reported by path and skipped. Under
    torchrun (torchrun --nproc_per_node N -m graphrec.cli extract-features ...) the
    processes share the work and the output is the same as one process's.
    """
    import warnings

    from graphrec.distributed import is_main_process
    from graphrec.extract import MAX_REPORTED, extract_features
    from graphrec.vision import RandomWeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        result = extract_features(images=images, out=one_of(out, output, "--out and --output"), manifest=manifest, weights=weights, seed=seed,
                                  batch_size=batch_size, workers=workers, device=device, quiet=quiet,
                                  distributed=distributed)
    if distributed is not False and not is_main_process():
        return  # rank 0 reports for every process
    for warning in caught:
        if issubclass(warning.category, RandomWeightsWarning):
            err_console.print(f"[bold yellow]warning:[/] {warning.message}", highlight=False, soft_wrap=True)
    for problem in result.problems[:MAX_REPORTED]:
        err_console.print(f"[yellow]skipped:[/] {problem}", highlight=False, soft_wrap=True)
    if len(result.problems) > MAX_REPORTED:
        err_console.print(f"... and {len(result.problems) - MAX_REPORTED} more skipped images", highlight=False)
    spec = result.spec
    network = {"random": f"random (seed {spec['seed']})", "imagenet": "imagenet", "file": f"file {spec['path']}"}[spec["weights"]]
    if result.up_to_date:
        console.print(f"{result.path} is up to date: {result.num_images} images, AlexNet fc7, weights {network}.", highlight=False, soft_wrap=True)
        return
    skipped = ", ".join(f"{n} {why}" for why, n in result.skipped.items()) or "none"
    console.print(
        f"wrote {result.path}: {result.num_images} images x 4096 fc7 features, weights {network}; "
        f"{result.extracted} extracted now ({result.images_per_second:.1f} images/s), {result.resumed} from an "
        f"earlier run; skipped: {skipped}. Network recorded in {result.sidecar_path}.",
        highlight=False, soft_wrap=True,
    )


