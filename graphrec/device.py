"""Where the arithmetic runs: how many CPU threads (``--threads``) and which device
(``--device``) the commands use.

torch's default takes every core even when other work holds them; on the 2-core machine
under load that made training about 4x slower than one thread (the threads wait for each
other). :func:`default_threads` therefore counts the cores this process may use less the
ones the system's load already keeps busy, never fewer than one.
"""

from __future__ import annotations

import math
import os
import time

import torch

from graphrec.errors import UsageError

__all__ = ["available_cores", "default_threads", "use_threads", "resolve_device"]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores(samples: int = 3, pause: float = 0.01) -> float:
    """How many cores other work keeps busy now: the runnable tasks besides this one, from
    ``/proc/loadavg`` (the median of a few samples), else the 1-minute load average.

    Not the load average where the instantaneous count exists: it still counts a graphrec
    command that ended seconds ago, so a second run straight after a first would get one
    thread on two idle cores."""
    counts = []
    for attempt in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as handle:
                running = int(handle.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            break
        counts.append(max(running - 1, 0))  # the reading process is one of them
        if attempt + 1 < samples:
            time.sleep(pause)
    if counts:
        return float(sorted(counts)[len(counts) // 2])
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def default_threads() -> int:
    """The cores that other work does not keep busy now (:func:`busy_cores`), at least 1."""
    cores = available_cores()
    return max(1, min(cores, math.floor(cores - busy_cores() + 0.5)))


def use_threads(threads: int | None = None) -> int:
    """Set torch's (and faiss's) CPU threads to ``threads`` (None: :func:`default_threads`);
    returns the number set."""
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1 (got {threads}).")
    count = default_threads() if threads is None else int(threads)
    torch.set_num_threads(count)
    try:
        import faiss

        faiss.omp_set_num_threads(count)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass
    return count


def resolve_device(device: str) -> str:
    """``device`` checked: cpu, cuda or cuda:N (a clear error where no CUDA GPU is visible)."""
    device = str(device).strip().lower()
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()) or device == "mps"):
        raise UsageError(f"--device {device}: use cpu or cuda (cuda:N for a given GPU).")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} was asked for but no CUDA GPU is available here "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu.")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0.")
    return device
