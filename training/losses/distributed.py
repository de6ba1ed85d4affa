"""A differentiable all_gather for losses that need the global batch."""

from __future__ import annotations

import torch


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient and keeps this rank's slice
    (uses only all_reduce, so it runs on gloo as well as NCCL)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        dist = torch.distributed
        ctx.rank, ctx.rows = dist.get_rank(), z.shape[0]
        pieces = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(pieces, z.contiguous())
        return torch.cat(pieces)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def world_and_rank() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """All ranks' rows in rank order, differentiable (z itself in one process). Every rank
    must hold the same batch size (the trainer drops the last partial batch)."""
    world, _ = world_and_rank()
    return z if world == 1 else _GatherWithGrad.apply(z)
