"""Collaborative link prediction against its peers (issue 14, "Measured against the peers").

Two measurements, each in one process and on the same splits for every method:

1. **GATNE Amazon** (``--data``, default ``../shared/data/gatne_amazon`` next to the repo):
   every edge type (1 = also_bought, 2 = also_viewed) gets its own model, trained on that
   type's ``train.txt`` edges and early-stopped on its ``valid.txt`` pairs, and is scored
   on its ``test.txt`` pairs with GATNE's metrics (:func:`graphrec.metrics.pair_metrics`:
   ROC-AUC, trapezoid PR-AUC, rank-cut F1, and average precision). The table gives each
   type, their mean, and the training seconds, once on all test pairs and once with the
   test pairs that are training edges of that type removed; GATNE's published means
   (KDD 2019, Table 3, from the data's README) are printed beside it.
2. **A plain ~250k-edge list** (``--planted-edges``, 0 skips it): a generated graph
   (communities with popular products, plus noise edges) is written as a ``u v`` file, read
   back with :func:`graphrec.io.edges.read_edge_list` (timed) and split by the paper's
   protocol (:func:`graphrec.sampling.split_pairs`: 80/10/10 with as many random non-edges);
   methods are scored by test accuracy (threshold chosen on the training pairs) and ROC-AUC.

Methods (:data:`METHODS`; ``--methods`` picks some):

* ``lightgcn``: PyG's ``LightGCN`` (64-d, 3 layers, BPR loss with one random negative per
  edge, Adam), message passing over the training edges only, early stopping on validation
  ROC-AUC: the reference the issue quotes;
* ``resource-allocation`` / ``adamic-adar``: neighbourhood heuristics on the training edges
  (``scipy.sparse``, no training);
* graphrec's own encoders (``graphrec-<encoder>``): trained through
  :func:`graphrec.train.train` once it takes ``encoder=`` (branch ``shape``); until then the
  entries report "not available" instead of a number.

    python benchmarks/bench_collaborative.py                              # both measurements
    python benchmarks/bench_collaborative.py --methods resource-allocation adamic-adar --planted-edges 0
    python benchmarks/bench_collaborative.py --epochs 50 --json results.json

Timings are wall-clock on a shared 2-core machine; the ratio column is each method's
seconds relative to resource allocation in the same process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from graphrec.errors import GraphrecError
from graphrec.io.edges import read_edge_list
from graphrec.io.pairs import read_pairs
from graphrec.metrics import pair_metrics
from graphrec.pairs import is_edge
from graphrec.train import best_offset

ROOT = Path(__file__).resolve().parent.parent
#: ``../shared/data/gatne_amazon`` beside the checkout (a worktree under ``wt/`` looks one level higher too)
DEFAULT_DATA = next((base / "shared" / "data" / "gatne_amazon" for base in (ROOT.parent, ROOT.parent.parent)
                     if (base / "shared" / "data" / "gatne_amazon").is_dir()), ROOT.parent / "shared" / "data" / "gatne_amazon")
RELATIONS = ("also_bought", "also_viewed")
#: GATNE's Table 3 (KDD 2019) as quoted in the data's README: mean over the two types, in %.
PUBLISHED = {
    "DeepWalk": (94.20, 94.03, 87.38), "node2vec": (94.47, 94.30, 87.88), "LINE": (81.45, 74.97, 76.35),
    "metapath2vec": (94.15, 94.01, 87.48), "PMNE(n)": (95.59, 95.48, 89.37), "MVE": (92.98, 93.05, 87.80),
    "MNE": (90.28, 91.74, 83.25), "GATNE-T": (97.44, 97.05, 92.87), "GATNE-I": (96.25, 94.77, 91.36),
}


@dataclass
class Task:
    """One model's job: training edges ``[2, E]`` (each once) over ``num_nodes`` nodes, and
    labelled validation / test pairs ``[m, 2]`` with 0/1 labels."""

    name: str
    num_nodes: int
    train_edges: torch.Tensor
    val_pairs: torch.Tensor
    val_labels: torch.Tensor
    test_pairs: torch.Tensor
    test_labels: torch.Tensor
    extra_edges: dict[str, torch.Tensor] | None = None  # other relations' training edges (for multiplex encoders)


Scorer = Callable[[torch.Tensor], torch.Tensor]  # pairs [m, 2] -> scores [m] (higher = edge)


# ----------------------------------------------------------------------------- peers


def adjacency(task: Task) -> sp.csr_matrix:
    """Symmetric 0/1 adjacency of the training edges."""
    u, v = task.train_edges.numpy()
    ones = np.ones(2 * len(u), dtype=np.float64)
    matrix = sp.csr_matrix((ones, (np.r_[u, v], np.r_[v, u])), shape=(task.num_nodes, task.num_nodes))
    matrix.data[:] = 1.0  # repeated edges count once
    return matrix


def neighbourhood_scorer(task: Task, weight: Callable[[np.ndarray], np.ndarray]) -> Scorer:
    """score(u, v) = sum over common neighbours z of weight(degree z): 1/d is resource
    allocation, 1/log d is Adamic-Adar."""
    matrix = adjacency(task)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    weights = np.zeros_like(degree)
    linked = degree > 0
    weights[linked] = weight(degree[linked])
    weighted = (matrix @ sp.diags(weights)).tocsr()

    def score(pairs: torch.Tensor) -> torch.Tensor:
        u, v = pairs[:, 0].numpy(), pairs[:, 1].numpy()
        out = np.asarray(weighted[u].multiply(matrix[v]).sum(axis=1)).ravel()
        return torch.from_numpy(out)

    return score


def fit_resource_allocation(task: Task, options) -> Scorer:
    return neighbourhood_scorer(task, lambda d: 1.0 / d)


def fit_adamic_adar(task: Task, options) -> Scorer:
    return neighbourhood_scorer(task, lambda d: 1.0 / np.log(np.maximum(d, 2.0)))


def fit_lightgcn(task: Task, options) -> Scorer:
    """PyG LightGCN on the training edges, BPR loss, early stopping on validation ROC-AUC."""
    from torch_geometric.nn.models import LightGCN

    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    edges = task.train_edges
    message = torch.cat([edges, edges.flip(0)], dim=1)  # training edges only, both directions
    model = LightGCN(task.num_nodes, embedding_dim=options.dim, num_layers=options.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    best, best_state, stale = -1.0, None, 0
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = torch.randperm(message.shape[1], generator=generator)
        for start in range(0, len(order), options.batch_size):
            batch = message[:, order[start : start + options.batch_size]]
            negatives = torch.randint(0, task.num_nodes, (batch.shape[1],), generator=generator)
            label_index = torch.cat([batch, torch.stack([batch[0], negatives])], dim=1)
            rank = model(message, label_index)
            half = batch.shape[1]
            loss = model.recommendation_loss(rank[:half], rank[half:], node_id=label_index.unique(), lambda_reg=options.reg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % options.eval_every and epoch != options.epochs:
            continue
        auc = pair_metrics(_lightgcn_scores(model, message, task.val_pairs), task.val_labels)["roc_auc"]
        if auc > best:
            best, best_state, stale = auc, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            stale += 1
            if stale >= options.patience:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        embedding = model.get_embedding(message)
    return lambda pairs: (embedding[pairs[:, 0]] * embedding[pairs[:, 1]]).sum(-1).double()


@torch.no_grad()
def _lightgcn_scores(model, message: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(message, pairs.t()).double()


def graphrec_fitter(encoder: str | None, multiplex: bool = False) -> Callable[[Task, argparse.Namespace], Scorer]:
    """A graphrec encoder trained through :func:`graphrec.train.train` on the task's edges,
    early-stopped on its validation pairs (``val_pairs=``); ``multiplex`` also passes the
    other relations' training edges to message passing (``message_relations=``); ``encoder``
    None trains the default encoder of a graph without features."""

    def fit(task: Task, options) -> Scorer:
        from graphrec.graph import Graph
        from graphrec.train import train

        others = task.extra_edges or {}
        graph = Graph.from_arrays([str(i) for i in range(task.num_nodes)], {task.name: task.train_edges, **others})
        extra = {"message_relations": [task.name, *others]} if multiplex else {}
        if encoder is not None:
            extra["encoder"] = encoder
        with tempfile.TemporaryDirectory() as tmp:
            val_file = Path(tmp) / "valid.txt"
            val_file.write_text("".join(f"{task.name} {u} {v} {int(y)}\n" for (u, v), y in
                                        zip(task.val_pairs.tolist(), task.val_labels.tolist())))
            run = train(graph, relation=task.name, val_pairs=val_file, out_dir=Path(tmp) / "run",
                        quiet=True, seed=options.seed, k=options.k, **extra)
        return lambda pairs: run.model.predict_proba(run.inputs, pairs).double()

    return fit


METHODS: dict[str, Callable[[Task, argparse.Namespace], Scorer]] = {
    "graphrec-default": graphrec_fitter(None),
    "resource-allocation": fit_resource_allocation,
    "adamic-adar": fit_adamic_adar,
    "lightgcn": fit_lightgcn,
    "graphrec-embedding": graphrec_fitter("embedding"),
    "graphrec-lightgcn": graphrec_fitter("lightgcn"),
    "graphrec-lightgcn-multiplex": graphrec_fitter("lightgcn", multiplex=True),
}


# ----------------------------------------------------------------------------- GATNE Amazon


def gatne_tasks(data: Path) -> tuple[list[Task], dict]:
    """One :class:`Task` per edge type of GATNE's files, and facts about them."""
    edges = read_edge_list(data / "train.txt")
    index = {node: i for i, node in enumerate(edges.ids)}
    tasks, facts = [], {"nodes": edges.num_nodes, "train_lines": edges.lines, "bad_lines": edges.bad_lines}
    for relation in RELATIONS:
        train_edges = _canonical(edges.edges[relation], edges.num_nodes)
        others = {name: _canonical(e, edges.num_nodes) for name, e in edges.edges.items() if name != relation}
        split = {}
        for part in ("valid", "test"):
            pairs = read_pairs(data / f"{part}.txt", relation)
            nodes = torch.from_numpy(pairs.node_pairs(index))
            if bool((nodes < 0).any()):
                raise SystemExit(f"{data / part}.txt names nodes that are not in train.txt; this benchmark expects none.")
            split[part] = (nodes, torch.from_numpy(pairs.labels.astype(np.float64)))
        tasks.append(Task(relation, edges.num_nodes, train_edges, *split["valid"], *split["test"], extra_edges=others))
        facts[relation] = {"train_edges": int(train_edges.shape[1]), "test_pairs": len(split["test"][0])}
    return tasks, facts


def _canonical(index: np.ndarray, num_nodes: int) -> torch.Tensor:
    from graphrec.graph import canonical_edges

    return canonical_edges(index, num_nodes)


def score_gatne(tasks: list[Task], methods: list[str], options) -> list[dict]:
    """Per method and type: metrics on all test pairs and without training edges, seconds."""
    rows = []
    for method in methods:
        for task in tasks:
            started = time.perf_counter()
            try:
                scorer = METHODS[method](task, options)
            except GraphrecError as why:
                rows.append({"method": method, "relation": task.name, "missing": str(why)})
                break
            scores = scorer(task.test_pairs)
            seconds = time.perf_counter() - started
            seen = is_edge(task.test_pairs, task.train_edges, task.num_nodes)
            rows.append({"method": method, "relation": task.name, "seconds": seconds,
                         "all": pair_metrics(scores, task.test_labels, seed=options.seed),
                         "without_training_edges": pair_metrics(scores[~seen], task.test_labels[~seen], seed=options.seed),
                         "removed": {"positives": int((seen & (task.test_labels > 0.5)).sum()),
                                     "negatives": int((seen & (task.test_labels < 0.5)).sum())}})
            print(f"  {method} on {task.name}: {seconds:.1f}s", file=sys.stderr, flush=True)
    return rows


def print_gatne_table(rows: list[dict], view: str) -> None:
    keys = ("roc_auc", "pr_auc", "f1", "average_precision")
    print(f"\n{view.replace('_', ' ')} | ROC-AUC | PR-AUC | F1 | AP (in %; per type: also_bought / also_viewed; mean)")
    print("| method | ROC-AUC | PR-AUC | F1 | AP | ties at F1 cut | train s | x RA time |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = sum(r["seconds"] for r in rows if r["method"] == "resource-allocation" and "seconds" in r) or None
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        if "missing" in mine[0]:
            print(f"| {method} | not available: {mine[0]['missing']} | | | | | | |")
            continue
        cells = []
        for key in keys:
            values = [100 * r[view][key] for r in mine]
            cells.append(f"{' / '.join(f'{v:.2f}' for v in values)}; **{np.mean(values):.2f}**")
        ties = " / ".join(str(r[view]["threshold_ties"]) for r in mine)
        seconds = sum(r["seconds"] for r in mine)
        ratio = f"{seconds / base:.1f}" if base else "-"
        print(f"| {method} | {' | '.join(cells)} | {ties} | {seconds:.1f} | {ratio} |")
    if view == "all":
        for name, (roc, pr, f1) in PUBLISHED.items():
            print(f"| {name} (published) | {roc:.2f} | {pr:.2f} | {f1:.2f} | | | | |")
    else:
        removed = {r["relation"]: r["removed"] for r in rows if "removed" in r}
        print("removed test pairs that are training edges: "
              + "; ".join(f"{name} {c['positives']} positives, {c['negatives']} negatives" for name, c in removed.items()))


# ----------------------------------------------------------------------------- planted edge list


def planted_edge_list(path: Path, edges: int, seed: int = 0, community: int = 400, noise: float = 0.1) -> int:
    """Write a ``u v`` file of about ``edges`` edges: products in communities of
    ``community``, each edge joins two products of one community picked by Zipf popularity
    (a ``noise`` share joins two random products). Ids look like ASINs. Returns the node count."""
    rng = np.random.default_rng(seed)
    nodes = max(2 * community, edges // 5)
    groups = nodes // community
    popularity = 1.0 / np.arange(1, community + 1) ** 0.8
    popularity /= popularity.sum()
    group = rng.integers(0, groups, size=edges)
    u = group * community + rng.choice(community, size=edges, p=popularity)
    v = group * community + rng.choice(community, size=edges, p=popularity)
    random = rng.random(edges) < noise
    u[random], v[random] = rng.integers(0, groups * community, size=(2, int(random.sum())))
    keep = u != v
    names = np.array([f"P{i:09d}" for i in range(groups * community)])
    with open(path, "w") as handle:
        handle.write(f"# planted edge list: {groups} communities of {community}, noise {noise}\n")
        handle.writelines(f"{a} {b}\n" for a, b in zip(names[u[keep]], names[v[keep]]))
    return groups * community


def score_planted(options, methods: list[str]) -> list[dict]:
    """Generate the planted list, build its graph with ``build-graph --edges`` (timed), split
    it by the paper's protocol, then score every method on its test pairs."""
    from graphrec.graph import build_graph, load_graph
    from graphrec.sampling import split_pairs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edges.txt"
        planted_edge_list(path, options.planted_edges, options.seed)
        started = time.perf_counter()
        edges = read_edge_list(path)
        read_seconds, started = time.perf_counter() - started, time.perf_counter()
        graph = load_graph(build_graph(None, Path(tmp) / "graph", edges=path, quiet=True).path, mmap=False)
        build_seconds = time.perf_counter() - started
    split = split_pairs(graph, "also_bought", options.seed)
    print(f"\nplanted edge list: {edges.lines:,} lines, {graph.num_nodes:,} products, "
          f"{graph.edge_index('also_bought').shape[1]:,} distinct edges; read in {read_seconds:.2f}s, "
          f"build-graph --edges in {build_seconds:.2f}s; paper split {split.sizes()}", flush=True)
    task = Task("planted", graph.num_nodes, split.train_positives.t().contiguous(), split.val_pairs, split.val_labels,
                split.test_pairs, split.test_labels)
    rows = []
    for method in methods:
        started = time.perf_counter()
        try:
            scorer = METHODS[method](task, options)
        except GraphrecError as why:
            rows.append({"method": method, "missing": str(why)})
            continue
        # every method's threshold is chosen on the validation pairs (the pairs it early-stops
        # on; test pairs never): the training pairs are memorised by per-product vectors
        offset, _ = best_offset(scorer(split.val_pairs), split.val_labels)
        scores = scorer(split.test_pairs)
        rows.append({"method": method, "seconds": time.perf_counter() - started,
                     "accuracy": float(((scores + offset > 0).double() == split.test_labels).double().mean()),
                     **{k: pair_metrics(scores, split.test_labels)[k] for k in ("roc_auc", "pr_auc", "f1")}})
    print("| method | test accuracy | ROC-AUC | PR-AUC | F1 | seconds |\n|---|---:|---:|---:|---:|---:|")
    for row in rows:
        if "missing" in row:
            print(f"| {row['method']} | not available: {row['missing']} | | | | |")
        else:
            print(f"| {row['method']} | {row['accuracy']:.4f} | {row['roc_auc']:.4f} | {row['pr_auc']:.4f} | "
                  f"{row['f1']:.4f} | {row['seconds']:.1f} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with GATNE's train/valid/test.txt ('' skips it)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--planted-edges", type=int, default=250_000, help="size of the generated edge list (0 skips it)")
    parser.add_argument("--epochs", type=int, default=40, help="LightGCN epochs at most")
    parser.add_argument("--eval-every", type=int, default=2, help="LightGCN epochs between validation checks")
    parser.add_argument("--patience", type=int, default=3, help="evaluations without a better validation AUC")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=16_384)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=64, help="graphrec's style dimension K (64 like the LightGCN peer's --dim)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--reg", type=float, default=1e-4, help="LightGCN's L2 on the batch's embeddings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    options = parser.parse_args(argv)
    warnings.simplefilter("ignore", FutureWarning)
    results = {"threads": torch.get_num_threads()}
    if str(options.data) not in ("", "."):
        if not (options.data / "train.txt").is_file():
            parser.error(f"{options.data} has no train.txt; pass --data DIR with GATNE's files, or --data '' to skip them")
        tasks, facts = gatne_tasks(options.data)
        print(f"GATNE Amazon {options.data}: {facts}", flush=True)
        rows = score_gatne(tasks, options.methods, options)
        for view in ("all", "without_training_edges"):
            print_gatne_table(rows, view)
        results["gatne"] = {"facts": facts, "rows": rows}
    if options.planted_edges:
        results["planted"] = score_planted(options, options.methods)
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
