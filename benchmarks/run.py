"""Run every benchmark in ``benchmarks/`` and print a summary table.

    .venv/bin/python benchmarks/run.py --quick     # small sizes: a few minutes, a smoke test of every script
    .venv/bin/python benchmarks/run.py --full      # the sizes quoted in the README (the scale run takes long)
    .venv/bin/python benchmarks/run.py --quick --only train neighbours

Each ``bench_*.py`` runs in its own process with the arguments below (a script not listed
runs with its defaults). Its whole output goes to ``benchmarks/cache/run-logs/<name>.log``;
the table shows the exit status, wall time and the script's last output lines. The
``--quick`` scale run writes its results under ``benchmarks/cache/`` so it never touches
the committed ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOGS = HERE / "cache" / "run-logs"

#: script stem -> (quick arguments, full arguments)
ARGUMENTS: dict[str, tuple[list[str], list[str]]] = {
    "bench_build_graph": (["--products", "500", "--catalogue", "5000", "--dim", "256", "--scale", "0"], []),
    "bench_train": (["--products", "600", "--feature-dim", "256", "--k", "1", "10", "--decoder", "mahalanobis", "euclidean"], []),
    "bench_neighbours": (["--size", "20000", "--single", "20", "--batch", "100"], []),
    "bench_extract": (["--images", "32", "--batch-size", "16"], []),
    "bench_distributed": (["--products", "300", "--dim", "64", "--epochs", "2", "--images", "16"], []),
    "bench_collaborative": (["--epochs", "2", "--planted-edges", "20000"], []),
    "bench_scale": (["--products", "2000", "--dim", "256", "--k", "10", "--epochs", "2", "--single", "20", "--batch", "100",
                     "--work", str(HERE / "cache" / "quick-scale-work"), "--results", str(HERE / "cache" / "quick-results")],
                    ["--products", "100000"]),
}


def scripts(only: list[str] | None) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {name if name.startswith("bench_") else f"bench_{name}" for name in only}
        unknown = wanted - {path.stem for path in found}
        if unknown:
            sys.exit(f"no benchmark named {', '.join(sorted(unknown))}; have: {', '.join(p.stem for p in found)}")
        found = [path for path in found if path.stem in wanted]
    return found


def run_one(script: Path, full: bool, timeout: float | None) -> dict:
    quick_args, full_args = ARGUMENTS.get(script.stem, ([], []))
    arguments = full_args if full else quick_args
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{script.stem}.log"
    command = [sys.executable, str(script), *arguments]
    print(f"--- {script.name} {' '.join(arguments)}", flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        try:
            status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
    wall = time.perf_counter() - started
    lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return {"script": script.name, "status": status, "seconds": wall, "tail": lines[-3:], "log": log}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark script and print a summary table.")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="small sizes (minutes)")
    size.add_argument("--full", action="store_true", help="the README's sizes (long)")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks (e.g. train neighbours)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per script (default: none)")
    args = parser.parse_args()

    results = [run_one(script, args.full, args.timeout) for script in scripts(args.only)]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"benchmarks ({'full' if args.full else 'quick'})", title_justify="left")
    table.add_column("script", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("wall", justify="right", no_wrap=True)
    table.add_column("last lines of output")
    for result in results:
        ok = result["status"] == 0
        table.add_row(result["script"], "ok" if ok else f"[red]{result['status']}[/]", f"{result['seconds']:.0f} s",
                      "\n".join(line.strip()[:100] for line in result["tail"]) or "-")
    Console(width=max(160, Console().width)).print(table)
    print(f"full output: {LOGS}/")
    sys.exit(0 if all(result["status"] == 0 for result in results) else 1)


if __name__ == "__main__":
    main()
