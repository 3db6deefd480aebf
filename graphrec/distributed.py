"""Small helpers for running graphrec under ``torchrun`` / ``torch.distributed``.

graphrec never starts processes itself: ``torchrun`` does, and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in each worker's environment. :func:`distributed_context` reads them,
joins the process group (gloo on CPU, NCCL when the work runs on CUDA) and leaves it
again afterwards. Outside torchrun it yields a one-process :class:`DistContext` whose
collectives are no-ops, so library code is written once for both cases:

>>> with distributed_context() as ctx:          # auto: distributed under torchrun
...     mine = ctx.shard(items)                 # this rank's contiguous block
...     loss_sum, correct = ctx.all_reduce_sum(loss_sum, correct)
...     result = ctx.on_main(write_outputs)     # rank 0 runs it, every rank gets the result

Ranks must call the collectives in the same order; :meth:`DistContext.on_main` carries
a :class:`~graphrec.errors.GraphrecError` raised on rank 0 to every rank, so a user
error ends all processes with the same one-line message instead of leaving them waiting.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from graphrec.errors import GraphrecError, UsageError

__all__ = [
    "TORCHRUN_VARIABLES",
    "DistContext",
    "torchrun_env",
    "under_torchrun",
    "is_main_process",
    "shard_range",
    "shard_list",
    "init_distributed",
    "distributed_context",
    "PairLogits",
]

T = TypeVar("T")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT = timedelta(minutes=60)  # ranks may wait at a barrier while a slower shard finishes


def torchrun_env(environ: dict[str, str] | None = None) -> dict[str, int] | None:
    """``{"rank", "world_size", "local_rank", "local_world_size"}`` from a torchrun
    environment, or None when the variables are absent (a plain ``python`` run)."""
    env = os.environ if environ is None else environ
    if not all(name in env for name in ("RANK", "WORLD_SIZE")):
        return None
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local_rank = int(env.get("LOCAL_RANK", rank))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise UsageError(f"the torchrun variables RANK={env.get('RANK')!r} WORLD_SIZE={env.get('WORLD_SIZE')!r} "
                         "are not integers; start graphrec with torchrun.") from None
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world}); start graphrec with torchrun.")
    return {"rank": rank, "world_size": world, "local_rank": local_rank, "local_world_size": local_world}


def under_torchrun() -> bool:
    """True when this process is one of several workers started by torchrun."""
    env = torchrun_env()
    return env is not None and env["world_size"] > 1


def is_main_process() -> bool:
    """True unless this is a torchrun worker of rank > 0 (use it to print or write once)."""
    env = torchrun_env()
    return env is None or env["rank"] == 0


def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous block of ``n`` items; blocks differ
    in size by at most one, cover ``0..n`` in rank order and never overlap."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_list(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s contiguous block of ``items`` (see :func:`shard_range`)."""
    start, stop = shard_range(len(items), rank, world_size)
    return list(items[start:stop])


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes.

    With ``world_size == 1`` every collective returns its input unchanged.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True when several processes take part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes shared outputs."""
        return self.rank == 0

    # -- sharding -------------------------------------------------------------------
    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's contiguous block of ``items``."""
        return shard_list(items, self.rank, self.world_size)

    def batch_shard(self, n: int) -> slice:
        """This rank's strided share ``rank::world_size`` of a mini-batch of ``n`` items."""
        return slice(self.rank, n, self.world_size)

    # -- collectives ----------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, *values: float) -> tuple[float, ...]:
        """Sums of numbers over all ranks (float64), in the order given."""
        if not self.enabled:
            return tuple(float(v) for v in values)
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tuple(tensor.cpu().tolist())

    def broadcast_object(self, value: Any, src: int = 0) -> Any:
        """``value`` as it is on rank ``src``, on every rank (picklable values)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=src, device=self._device())
        return box[0]

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def on_main(self, func: Callable[..., T], *args: Any, share: bool = True, **kwargs: Any) -> T | None:
        """Run ``func`` on rank 0 only; its result is returned on every rank (``share``)
        or on rank 0 only (others get None, for results that must not travel, such as
        open writers). A :class:`GraphrecError` raised there is raised on every rank."""
        if not self.enabled:
            return func(*args, **kwargs)
        outcome: tuple[str, Any] = ("ok", None)
        result = None
        if self.is_main:
            try:
                result = func(*args, **kwargs)
            except GraphrecError as error:
                self.broadcast_object(("error", error))
                raise
            outcome = ("ok", result if share else None)
        outcome = self.broadcast_object(outcome)
        if outcome[0] == "error":
            raise outcome[1]
        return result if self.is_main else outcome[1]

    def wrap_logits(self, model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``model.logits`` in one process; a DistributedDataParallel module computing the
        same thing (gradients averaged over ranks in ``backward``) in several."""
        if not self.enabled:
            return model.logits
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(PairLogits(model))

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def _backend_for(device: str) -> str:
    return "nccl" if str(device).startswith("cuda") and dist.is_nccl_available() else "gloo"


def init_distributed(distributed: bool | None = None, device: str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT) -> DistContext:
    """Join torchrun's process group (once per process; it is left at exit) and describe it.

    ``distributed`` None detects torchrun (several workers -> distributed); True requires
    it (a :class:`UsageError` outside torchrun); False runs as one process even under
    torchrun. The backend is NCCL when ``device`` is CUDA, else gloo. A process group
    that is already started (by graphrec or by the caller) is used as it is.
    """
    env = torchrun_env()
    if distributed and env is None:
        raise UsageError("--distributed needs the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); "
                         "start the command with torchrun --nproc_per_node N -m graphrec.cli ... (see the README).")
    if distributed is False or env is None or env["world_size"] == 1:
        return DistContext()
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed support; run without torchrun.")
    if not dist.is_initialized():
        backend = _backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(env["local_rank"])
        dist.init_process_group(backend=backend, timeout=timeout)
        atexit.register(_leave)
    return DistContext(dist.get_rank(), dist.get_world_size(), env["local_rank"], env["local_world_size"],
                       dist.get_backend())


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_context(
    distributed: bool | None = None, device: str = "cpu", timeout: timedelta = DEFAULT_TIMEOUT
) -> Iterator[DistContext]:
    """:func:`init_distributed` for a ``with`` block; a process group started here is
    left at the end of the block (one the caller started stays open)."""
    owned = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(distributed, device, timeout)
    try:
        yield ctx
    finally:
        if owned and ctx.enabled:
            _leave()


class PairLogits(torch.nn.Module):
    """``forward(inputs, pairs) = model.logits(inputs, pairs)``: a module around a
    :class:`~graphrec.models.base.LinkModel` that DistributedDataParallel can wrap (DDP
    synchronises gradients of what its ``forward`` computes)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        return self.model.logits(inputs, pairs)
