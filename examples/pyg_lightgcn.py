"""Evaluate your own PyTorch Geometric model under graphrec's protocol.

A plain PyG LightGCN, trained on the paper's training pairs of a graphrec GRAPH_DIR and
scored on its test pairs with graphrec's metrics, the numbers `graphrec train` reports for
its own models on the same split:

    .venv/bin/python examples/pyg_lightgcn.py graphrec-sample/graph --epochs 200
"""

from __future__ import annotations

import argparse
import time

import torch
from torch_geometric.nn.models import LightGCN

from graphrec.graph import load_graph
from graphrec.pyg import paper_split_data, score_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", help="GRAPH_DIR written by graphrec build-graph")
    parser.add_argument("--relation", default="also_bought")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (graphrec train --seed)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train_data, val_data, test_data = paper_split_data(load_graph(args.graph), args.relation, args.seed, with_features=False)
    model = LightGCN(train_data.num_nodes, embedding_dim=args.dim, num_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    started, best = time.perf_counter(), (-1.0, None, 0)
    for epoch in range(1, args.epochs + 1):
        model.train()
        optimizer.zero_grad()
        logits = model(train_data.edge_index, train_data.edge_label_index)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_data.edge_label)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():  # keep the epoch with the best validation accuracy, as graphrec does
            val = score_pairs(model.predict_link(val_data.edge_index, val_data.edge_label_index, prob=True), val_data)
        if val["accuracy"] > best[0]:
            best = (val["accuracy"], {key: value.clone() for key, value in model.state_dict().items()}, epoch)
    model.load_state_dict(best[1])
    with torch.no_grad():
        test = score_pairs(model.predict_link(test_data.edge_index, test_data.edge_label_index, prob=True), test_data)
    print(f"PyG LightGCN, {args.epochs} epochs in {time.perf_counter() - started:.1f} s; best validation accuracy {best[0]:.4f} (epoch {best[2]})")
    print("test " + ", ".join(f"{key} {value:.4f}" for key, value in test.items() if key != "pairs") + f" ({test['pairs']:,} pairs)")


if __name__ == "__main__":
    main()
