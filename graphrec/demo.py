"""The newcomer's demo: the whole graphrec path on the bundled sample.

``./run.sh demo`` (or ``python -m graphrec.demo``) runs, in this process, exactly the
commands a user would type, printing each one first:

    graphrec extract-features --weights random     # or imagenet when already cached
    graphrec build-graph --force
    graphrec train --decoder mahalanobis --k 10 --force
    graphrec neighbours ASIN --top 5 --picture graphrec-sample/neighbours.png

Everything is written under ``./graphrec-sample/``.
"""

from __future__ import annotations

import shlex
import sys
import time

from graphrec.sample import WORK_DIR, WORK_GRAPH

__all__ = ["demo_steps", "run_demo"]


def demo_steps(weights: str, query: str | None) -> list[list[str]]:
    steps = [
        ["extract-features", "--weights", weights],
        ["build-graph", "--force"],
        ["train", "--decoder", "mahalanobis", "--k", "10", "--force"],
    ]
    picture = str(WORK_DIR / "neighbours.png")
    steps.append(["neighbours", *([query] if query else []), "--top", "5", "--picture", picture])
    return steps


def _first_connected_asin() -> str:
    from graphrec.graph import load_graph

    graph = load_graph(WORK_GRAPH)
    edges = graph.edge_index("also_bought")
    return str(graph.asins[int(edges[0, 0])])


def run_demo(argv: list[str] | None = None) -> int:
    from graphrec.cli import app
    from graphrec.vision import resolve_weights

    weights = resolve_weights("auto")
    print(f"graphrec demo on the bundled sample; outputs go to ./{WORK_DIR}/")
    if weights == "random":
        print("ImageNet AlexNet weights are not in the torch hub cache (no download here), so the demo uses "
              "--weights random: a seeded, untrained AlexNet. Its fc7 features still see colour and shape, "
              "but they are not ImageNet features.")
    else:
        print("Using torchvision's cached ImageNet AlexNet weights.")
    steps = demo_steps(weights, query=None)
    for number, args in enumerate(steps, 1):
        if args[0] == "neighbours":
            args.insert(1, _first_connected_asin())
        print(f"\n[{number}/{len(steps)}] graphrec {shlex.join(args)}", flush=True)
        started = time.perf_counter()
        try:
            app(args, prog_name="graphrec", standalone_mode=False)
        except SystemExit as stop:  # typer.Exit from a failed step
            if stop.code:
                print(f"step failed (exit code {stop.code}); see the message above", file=sys.stderr)
                return int(stop.code)
        except Exception as error:  # click.exceptions.Exit and friends
            code = getattr(error, "exit_code", 1)
            if code:
                print(f"step failed: {error}", file=sys.stderr)
                return int(code)
        print(f"    done in {time.perf_counter() - started:.1f} s")
    print(f"\nAll outputs are in ./{WORK_DIR}/: features, graph/, runs/mahalanobis-k10/ (metrics.json, curve.png) "
          f"and neighbours.png.")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(sys.argv[1:]))
