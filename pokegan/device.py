"""Devices, mixed precision and distributed (torchrun / DDP) helpers.

Under ``torchrun --nproc_per_node=N`` every step runs one process per GPU: :func:`init_distributed`
joins the process group (NCCL on CUDA, gloo on CPU), each process drives ``cuda:LOCAL_RANK``, the data is
sharded by the loader's sampler, and only rank 0 (:func:`is_main`) logs, writes pictures and saves.
Without torchrun everything here degrades to a single process (rank 0 of 1).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pokedata.errors import UserError
from pokedata.log import console


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    return world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(backend: str | None = None) -> bool:
    """Join the torchrun process group when launched by torchrun; returns whether we are distributed."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return is_distributed()
    if not dist.is_available():
        raise UserError("torch.distributed is not available in this build", hint="run without torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    if not is_main():  # one voice: rank 0 reports (torchrun still shows any rank's traceback)
        console.quiet = True
    return True


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; a missing CUDA is a UserError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(
                f"--device {name} requested but CUDA is not available", hint="use --device cpu or auto"
            )
        if name == "cuda":
            return torch.device(
                "cuda", local_rank() if launched_by_torchrun() else torch.cuda.current_device()
            )
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device", hint="use auto, cpu, cuda or cuda:N") from None


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU supports it, else fp16 (which then needs a grad scaler)."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True):
    """bf16 (fp16 on GPUs without bf16) autocast on CUDA when enabled; a no-op elsewhere (CPU runs float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=amp_dtype(device))
    return contextlib.nullcontext()


def make_grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """A grad scaler, enabled only for fp16 autocast (bf16 and float32 need none: it is then a no-op)."""
    enabled = amp and device.type == "cuda" and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=enabled)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (in place; identity when not distributed)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sync_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank (no-op when not distributed).

    DDP broadcasts buffers from rank 0 at the start of each training forward, but that forward then updates
    each replica's running statistics with its own batch: after the last step they differ by one batch.
    Call this before evaluating or encoding in eval mode so every rank uses the statistics rank 0 saves.
    """
    if is_distributed():
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)


def wrap_for_training(model: torch.nn.Module, device: torch.device, compile_model: bool):
    """``torch.compile`` (CUDA only) and, under torchrun, DistributedDataParallel.

    Returns ``(model to call, ddp or None)``; ``ddp`` is the DDP wrapper (for ``no_sync`` during
    gradient accumulation).
    """
    if compile_model and device.type == "cuda":
        model = torch.compile(model)
    if not is_distributed():
        return model, None

    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return ddp, ddp


def data_parallel(model: torch.nn.Module, device: torch.device, *, find_unused: bool = False):
    """``model`` under DistributedDataParallel when distributed, else ``model`` itself.

    DDP broadcasts rank 0's parameters and buffers at construction (replicas start equal) and averages the
    gradients of every backward pass through its ``forward``. ``find_unused``: parameters a forward may
    skip (a generator's unused coarser toRGB layers, a faded-out branch) are marked ready, not waited for.
    """
    if not is_distributed():
        return model

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def any_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any rank (every rank takes the same branch afterwards)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return bool(t.item() > 0)


def broadcast_object(obj):
    """Rank 0's Python object on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_seed(seed: int, step: int) -> int:
    """A seed of this rank at optimizer step ``step`` (ranks > 0 after loading rank 0's RNG states)."""
    return (seed * 1_000_003 + rank() * 7919 + step * 104_729) % 2**63


def reseed_rank(seed: int, step: int) -> None:
    """Give a rank > 0 its own python/numpy/torch streams again after it loaded rank 0's (a resume)."""

    s = rank_seed(seed, step)
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)


def setup_torch(device: torch.device, seed: int) -> None:
    """Seed every generator (offset by rank) and enable the fast CUDA kernels."""

    s = seed + rank()
    random.seed(s)
    np.random.seed(s % (2**32))
    torch.manual_seed(s)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


__all__ = [
    "all_reduce_sum",
    "amp_dtype",
    "any_true",
    "autocast",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "data_parallel",
    "init_distributed",
    "is_distributed",
    "is_main",
    "launched_by_torchrun",
    "make_grad_scaler",
    "local_rank",
    "rank",
    "rank_seed",
    "reseed_rank",
    "resolve_device",
    "setup_torch",
    "sync_buffers",
    "world_size",
]
