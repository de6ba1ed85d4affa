import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


def random_features(n, d, generator, dtype=torch.float64, rank=None):
    """Gaussian features; with `rank`, confined to a random subspace of that dimension."""
    if rank is None:
        return torch.randn(n, d, generator=generator, dtype=dtype)
    basis = torch.randn(rank, d, generator=generator, dtype=dtype)
    return torch.randn(n, rank, generator=generator, dtype=dtype) @ basis
