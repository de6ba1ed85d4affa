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


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory):
    """Image caches and other per-user caches go to a folder of this session, never ~/.cache
    (subprocesses inherit it)."""
    import os

    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
