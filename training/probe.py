"""The fixed probe set the dynamics are measured on.

Measuring each training step's own augmented batch mixes two things: how the network changes,
and which batch and which augmentations were drawn (with BatchNorm in train mode on top). A
frozen network then already shows moving, even "coupled", curves. The probe set removes the
second part: ``size`` images are drawn once, seeded, from the SSL training split; each gets two
views drawn once with fixed seeds; every measurement runs the same views through the model in
eval mode (BatchNorm running statistics), without gradient, in bounded-memory chunks. A frozen
network gives flat curves.

Each rank measures the whole probe set itself (it is small), so every rank, and one process,
get the same numbers with no communication.
"""

from __future__ import annotations

import sys

import torch
from adadim.dynamics import DynamicsMonitor, MonitorSettings
from adadim.dynamics.instrument import ProbeInstrument, embed_attributes

from .data import TwoViews, build_augmenter, training_dataset, two_view_transform
from .models import channels_last

# Probe sizes by dataset when dynamics.probe_size is not set: large enough for stable spectra
# (N >= D_Z of the default projectors where memory allows), small enough to cost little.
DEFAULT_PROBE_SIZES = {"digits": 1024, "synthetic": 256, "cifar10": 4096, "cifar100": 4096}
DEFAULT_PROBE_SIZE = 2048  # stl10, image folders: larger images
PROBE_SEED_OFFSET = 7_777_777  # keeps the probe's draws apart from the training views'


def probe_size(dataset_name: str, configured: int | None, available: int) -> int:
    size = configured if configured is not None else DEFAULT_PROBE_SIZES.get(dataset_name, DEFAULT_PROBE_SIZE)
    return max(2, min(int(size), available))


def note_probe_capped(configured: int, used: int) -> None:
    """Say on stderr that the probe set is smaller than ``dynamics.probe_size`` asked (the
    training split holds fewer images), and that the run records the size used."""
    print(
        f"adadim: dynamics.probe_size={configured} is more than the {used:,} training images; "
        f"the probe set holds all of them: dynamics.probe_size={used} (recorded in config.yaml)",
        file=sys.stderr,
    )


def probe_indices(n_available: int, size: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(PROBE_SEED_OFFSET + seed)
    return torch.randperm(n_available, generator=generator)[:size].sort().values


class ProbeSet:
    """The probe set's two fixed views (N×C×H×W each), held on the CPU. Every rank holds and
    measures the whole set, so all ranks (and one process) get the same numbers without
    communication."""

    def __init__(self, view1: torch.Tensor, view2: torch.Tensor) -> None:
        if view1.shape != view2.shape or len(view1) < 2:
            raise ValueError(f"probe views must match and hold >= 2 images, got {view1.shape} and {view2.shape}")
        self.view1, self.view2, self.size = view1, view2, len(view1)

    def forward(self, model, device: torch.device, chunk: int = 512, norm: str = "batch", autocast=None):
        """(R views, Z views) of the probe set from ``model`` (an SSLModel), measured by the
        model-agnostic ``ProbeInstrument`` (its docstring describes ``norm``: "batch" fixes
        BatchNorm to each chunk's statistics and puts the running ones back, "running" uses
        them). The model's modes, BatchNorm statistics and the global RNG are left unchanged."""
        instrument = ProbeInstrument(
            self.view1,
            self.view2,
            embed_attributes(model),
            model=model,
            chunk=chunk,
            norm=norm,
            prepare=channels_last,
            autocast=(lambda: autocast) if autocast is not None else None,
        )
        return instrument.embeddings(device=device)


def build_probe(data_cfg, splits, size: int, seed: int, view_seed: int | None = None) -> ProbeSet:
    """``size`` images of the SSL training split picked by ``seed``, each with two views drawn
    once by the run's own augmentation (the on-device augmenter, or the loader's per-sample
    transforms with ``data.augment_on=loader``) under ``view_seed`` (default: ``seed``)."""
    indices = probe_indices(len(splits.ssl_train), size, seed).tolist()
    draw_seed = PROBE_SEED_OFFSET + (seed if view_seed is None else view_seed)
    if data_cfg.augment_on == "loader":
        views = TwoViews(splits.ssl_train, two_view_transform(data_cfg.name, splits.image_size), draw_seed)
        views.set_epoch(0)
        pairs = [views[i] for i in indices]
        return ProbeSet(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
    dataset = training_dataset(splits, data_cfg, draw_seed)
    images = torch.stack([torch.as_tensor(dataset[i][0]) for i in indices])
    augmenter = build_augmenter(data_cfg, splits, draw_seed, 0, "cpu")
    assert augmenter is not None  # the loader-mode branch above returned
    return ProbeSet(*augmenter.views(images, 0))


def build_monitor(dynamics_cfg, sigmas: tuple[float, float] | None = None, gather: bool = False) -> DynamicsMonitor:
    """The monitor a run's ``dynamics`` section describes. ``sigmas``: fixed Gaussian widths of R
    and Z; ``gather``: gather views across ranks (training batches; the probe set needs none,
    since every rank measures all of it)."""
    return DynamicsMonitor(
        MonitorSettings(
            metrics=tuple(dynamics_cfg.metrics),
            order=dynamics_cfg.order,
            kernel=dynamics_cfg.kernel,
            n_permutations=dynamics_cfg.n_permutations,
            seed=dynamics_cfg.seed,
            gather=gather,
            sigma_r=sigmas[0] if sigmas else None,
            sigma_z=sigmas[1] if sigmas else None,
        )
    )
