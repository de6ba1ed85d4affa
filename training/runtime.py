"""Process-level plumbing of a run: the distributed layout, the stop request and the heap."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import sys
from dataclasses import dataclass
from typing import Any

import torch

from .config import ConfigError


@dataclass
class Distributed:
    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def master_process(self) -> bool:
        return self.rank == 0


def setup_distributed(device_choice: str) -> Distributed:
    """Single process, or the process group torchrun describes in the environment."""
    use_cuda = torch.cuda.is_available() if device_choice == "auto" else device_choice == "cuda"
    if device_choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(0, 0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, local_rank, world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def broadcast_object(value, dist: Distributed):
    """Rank 0's value on every rank."""
    if dist.world == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
RETAINED_TRIM_BYTES = 1 << 30  # free heap kept before glibc returns any of it to the OS
RETAINED_MMAP_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit: smaller blocks come from the heap


def set_heap_thresholds(trim_bytes: int, mmap_bytes: int) -> bool:
    """glibc's trim and mmap thresholds (``mallopt``; setting them also stops glibc raising
    them on its own). Process-wide, glibc only; returns whether both took effect."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # Either call may be refused alone (mallopt returns 0); the result says whether both held.
    trimmed = libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_bytes))
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_bytes))
    return bool(trimmed and mapped)


def retain_freed_memory() -> bool:
    """Let glibc keep freed heap memory for reuse instead of handing it back to the OS.

    A training step allocates and frees tensors of a few MB (activations, Gram matrices);
    with glibc's defaults each freed block above its trim or mmap threshold goes back to the
    OS and the next allocation faults its pages in again, zero-filled: 3,100-3,800 minor page
    faults per step of the digits config (520 retained). Raising both thresholds lets those blocks be
    reused. The values computed do not change; the process keeps its peak heap instead of
    returning it. Process-wide and one-way (False later does not undo it), glibc only; returns
    whether it took effect (False elsewhere)."""
    return set_heap_thresholds(RETAINED_TRIM_BYTES, RETAINED_MMAP_BYTES)


class StopRequest:
    """SIGTERM/SIGINT set a flag; the loop checkpoints and exits at the next step boundary
    (under DDP: at the next step where the ranks synchronize anyway)."""

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def agreed(self, dist: Distributed, device: torch.device) -> int:
        """Every rank stops at the same step: the largest signal seen by any rank."""
        if dist.world == 1:
            return self.signum
        flag = torch.tensor([self.signum], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag)


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor operations that make the host wait for the device (``item``,
    ``tolist``, ``bool``/``float``/``int`` of a tensor, ``numpy``) while active. On a GPU
    each is a synchronization; on the CPU the count says where one would be.

        with HostReads() as reads:
            ...
        reads.count, reads.calls
    """

    NAMES = frozenset({"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    @property
    def count(self) -> int:
        return len(self.calls)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.NAMES and not _optimizer_step_counter(args):
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def _optimizer_step_counter(args) -> bool:
    """torch.optim keeps Adam's step counts as CPU tensors on every device (unless capturable)
    and reads them with ``.item()``: host bookkeeping, never a wait for the accelerator."""
    tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if tensor is None or tensor.device.type != "cpu" or tensor.dim() != 0:
        return False
    caller = sys._getframe(2).f_code.co_filename
    return f"{os.sep}torch{os.sep}optim{os.sep}" in caller
