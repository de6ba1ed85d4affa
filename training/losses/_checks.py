import torch


def check_pair(z1: torch.Tensor, z2: torch.Tensor, min_samples: int = 2) -> None:
    """Two views of the same batch: equal 2-D shapes and at least `min_samples` rows. Values are
    not read (that would make the host wait for the device every step)."""
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor) or z.dim() != 2:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{name} must be a 2-D tensor (batch x dim), got {shape}")
    if z1.shape != z2.shape:
        raise ValueError(f"the two views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < min_samples:
        raise ValueError(f"the loss needs a batch of at least {min_samples}, got {z1.shape[0]}")
