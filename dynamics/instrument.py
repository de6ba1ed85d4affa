"""The probe instrument: the dynamics of any model, measured on a fixed probe set.

Design notes: docs/own-trainer.md, "Design notes: instrument".
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .entropy import autocast_off
from .monitor import DEFAULT_METRICS, DynamicsMonitor, MonitorSettings

Embed = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
NORMS = ("batch", "running")
SEED_OFFSET = 7_777_777  # keeps the probe's draws apart from a training run's own seeds
# The monitor's defaults less the sampled permutation baseline (dynamics/I_RZ_perm): the excess
# MI already subtracts the exact null, and the baseline's N×N gathers cost most of a measurement.
INSTRUMENT_METRICS = tuple(group for group in DEFAULT_METRICS if group != "permutation_baseline")


class InstrumentError(ValueError):
    """A probe, an ``embed`` or a setting the instrument cannot measure with."""


def embed_modules(backbone: torch.nn.Module, projector: torch.nn.Module) -> Embed:
    """``embed`` for a ``(backbone, projector)`` pair: R = backbone(x), Z = projector(R)."""

    def embed(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = backbone(x)
        r = r.flatten(1) if r.dim() > 2 else r  # a pooled (N, C, 1, 1) feature map
        return r, projector(r)

    return embed


PROJECTOR_NAMES = ("projector", "projection_head")  # solo-learn / stable-pretraining, lightly


def embed_attributes(model: torch.nn.Module, backbone: str = "backbone", projector: str | None = None) -> Embed:
    """``embed`` for a model with ``backbone`` and ``projector`` (or lightly's
    ``projection_head``) module attributes, as solo-learn, stable-pretraining and lightly
    models have: R = backbone(x) (flattened), Z = projector(R)."""
    names = (projector,) if projector is not None else PROJECTOR_NAMES
    head = next((n for n in names if isinstance(getattr(model, n, None), torch.nn.Module)), None)
    if not isinstance(getattr(model, backbone, None), torch.nn.Module) or head is None:
        wanted = f"{backbone!r} and {' or '.join(map(repr, names))}"
        raise InstrumentError(
            f"{type(model).__name__} has no module attributes {wanted}; pass embed=lambda x: (R, Z) instead"
        )
    return embed_modules(getattr(model, backbone), getattr(model, head))


def draw_views(
    images: torch.Tensor | Sequence[Any],
    augment: Callable[[Any], Any],
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed views of each image, drawn once by ``augment`` under a seeded RNG.

    ``images``: a tensor (N×...) or a dataset whose items are images or ``(image, label)``;
    ``indices`` picks the probe's items (default: all). ``augment`` is called on one image at a
    time (a torchvision transform). The global RNG is seeded for the draws and put back after,
    so drawing the probe changes nothing in the caller's random stream."""
    picked = range(len(images)) if indices is None else [int(i) for i in indices]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED_OFFSET + int(seed))
        pairs = []
        for i in picked:
            item = images[i]
            image = item[0] if isinstance(item, (tuple, list)) else item
            pairs.append((torch.as_tensor(augment(image)), torch.as_tensor(augment(image))))
    if len(pairs) < 2:
        raise InstrumentError(f"the probe needs at least 2 images, got {len(pairs)}")
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _batchnorms(model: torch.nn.Module | None) -> list[torch.nn.Module]:
    if model is None:
        return []
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def measuring_mode(model: torch.nn.Module | None, norm: str, device: torch.device) -> Iterator[None]:
    """The model in measuring mode (see the module docstring), everything put back on exit:
    each module's training flag, BatchNorm's running statistics, the global RNG states."""
    modes = [(m, m.training) for m in model.modules()] if model is not None else []
    norms = _batchnorms(model) if norm == "batch" else []
    saved = [(buffer, buffer.clone()) for m in norms for buffer in m.buffers()]
    rng_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=rng_devices), torch.no_grad():
            if model is not None:
                model.eval()
                for m in norms:
                    m.train(True)
            yield
    finally:
        for buffer, value in saved:
            buffer.copy_(value)
        for module, mode in modes:
            module.training = mode


def _check_embedding(out: object, n: int, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    where = f" at step {step}" if step is not None else ""
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise InstrumentError(f"embed must return a pair of tensors (R, Z){where}, got {type(out).__name__}")
    r, z = (t.flatten(1) if t.dim() > 2 else t for t in out)
    for name, t in (("R", r), ("Z", z)):
        if t.dim() != 2 or t.shape[0] != n:
            raise InstrumentError(
                f"embed returned {name} of shape {tuple(t.shape)} for {n} inputs{where}; "
                f"expected {n} rows (one per image), one feature vector each"
            )
    return r, z


class ProbeInstrument:
    """Measure the dynamics of ``embed`` on two fixed views of a probe set.

    - ``view1``, ``view2``: tensors N×... (N ≥ 2), row i of both the same image (see
      ``draw_views``); held on the CPU, sent to ``device`` chunk by chunk.
    - ``embed``: ``x -> (R, Z)``; or pass ``model`` alone when it has ``backbone`` and
      ``projector`` attributes. ``model`` (the module holding ``embed``'s weights) is what the
      BatchNorm handling and the mode restore act on; it is optional for a plain function.
    - ``settings``: the monitor's ``MonitorSettings`` (metrics, order, kernel, widths); default:
      the monitor's defaults less the sampled baseline (``INSTRUMENT_METRICS``). ``gather`` is
      forced off since every rank measures the whole probe.
    - ``every``: the cadence ``due(step)`` answers for; ``chunk``: images per forward pass
      (both views, so 2·chunk rows); ``norm``: "batch" or "running" (module docstring);
      ``prepare``: applied to each input batch on the device (e.g. channels-last);
      ``autocast``: a context manager factory for the forward pass (default: autocast off).
    """

    def __init__(
        self,
        view1: torch.Tensor,
        view2: torch.Tensor,
        embed: Embed | None = None,
        model: torch.nn.Module | None = None,
        settings: MonitorSettings | None = None,
        every: int = 50,
        chunk: int = 512,
        norm: str = "batch",
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        view1, view2 = torch.as_tensor(view1), torch.as_tensor(view2)
        if view1.shape != view2.shape:
            shapes = f"{tuple(view1.shape)} and {tuple(view2.shape)}"
            raise InstrumentError(f"the two probe views must have one shape, got {shapes}")
        if view1.dim() < 2 or len(view1) < 2:
            raise InstrumentError(f"the probe needs at least 2 images, got views of shape {tuple(view1.shape)}")
        if embed is None:
            if model is None:
                raise InstrumentError("pass embed=lambda x: (R, Z), or a model with backbone and projector attributes")
            embed = embed_attributes(model)
        if norm not in NORMS:
            raise InstrumentError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        if int(every) < 1 or int(chunk) < 1:
            raise InstrumentError(f"every and chunk must be >= 1, got every={every!r}, chunk={chunk!r}")
        self.view1, self.view2, self.size = view1, view2, len(view1)
        self.embed, self.model, self.every, self.chunk, self.norm = embed, model, int(every), int(chunk), norm
        self.prepare, self.autocast = prepare, autocast
        settings = settings if settings is not None else MonitorSettings(metrics=INSTRUMENT_METRICS)
        self.monitor = DynamicsMonitor(dataclasses.replace(settings, gather=False))
        self.last_step: int | None = None

    @classmethod
    def from_modules(
        cls,
        view1: torch.Tensor,
        view2: torch.Tensor,
        backbone: torch.nn.Module,
        projector: torch.nn.Module,
        **kwargs: Any,
    ) -> ProbeInstrument:
        """An instrument for R = backbone(x), Z = projector(R)."""
        model = torch.nn.ModuleDict({"backbone": backbone, "projector": projector})
        return cls(view1, view2, embed_modules(backbone, projector), model=model, **kwargs)

    @property
    def widths(self) -> tuple[float | None, float | None]:
        """The Gaussian widths (of R, of Z) in effect; None until calibrated or set."""
        return self.monitor.settings.widths

    def due(self, step: int) -> bool:
        """Whether ``step`` is a measuring step (every ``every`` steps, step 0 included)."""
        return int(step) % self.every == 0

    def _device(self) -> torch.device:
        if self.model is not None:
            for tensor in self.model.parameters():
                return tensor.device
        return torch.device("cpu")

    def embeddings(
        self, step: int | None = None, device: torch.device | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """(R views, Z views) of the probe set: ``((r1, r2), (z1, z2))``, float32."""
        device = device if device is not None else self._device()
        r1, r2, z1, z2 = [], [], [], []
        with measuring_mode(self.model, self.norm, device):
            for start in range(0, self.size, self.chunk):
                x = torch.cat([self.view1[start : start + self.chunk], self.view2[start : start + self.chunk]])
                x = x.to(device, non_blocking=True)
                if self.prepare is not None:
                    x = self.prepare(x)
                context = self.autocast() if self.autocast is not None else autocast_off(device)
                with context:
                    r, z = _check_embedding(self.embed(x), len(x), step)
                half = len(x) // 2
                r, z = r.float(), z.float()
                r1.append(r[:half])
                r2.append(r[half:])
                z1.append(z[:half])
                z2.append(z[half:])
        return (torch.cat(r1), torch.cat(r2)), (torch.cat(z1), torch.cat(z2))

    def measure_embeddings(
        self, r_views: Sequence[torch.Tensor], z_views: Sequence[torch.Tensor], step: int | None = None
    ) -> dict[str, float]:
        """The monitor's measurement of given probe embeddings; with the Gaussian kernel the
        widths are fixed on the first call."""
        for view in (*r_views, *z_views):
            if not bool(torch.isfinite(view).all()):
                where = f" at step {step}" if step is not None else ""
                raise InstrumentError(f"the model's outputs on the probe set are NaN or Inf{where}")
        if self.monitor.settings.kernel == "gaussian" and None in self.widths:
            self.monitor.calibrate(r_views, z_views)
        return self.monitor(r_views, z_views)

    def measure(self, step: int | None = None) -> dict[str, float]:
        """``{"dynamics/H_R": ..., ...}`` of the model as it is now."""
        r_views, z_views = self.embeddings(step)
        measured = self.measure_embeddings(r_views, z_views, step=step)
        if step is not None:
            self.last_step = int(step)
        return measured

    def log(self, step: int, run: Any = None, force: bool = False) -> dict[str, float]:
        """At a measuring step (``due(step)``, or ``force``): measure and, when ``run`` is given
        (e.g. ``wandb.run``), ``run.log({..., "trainer/step": step})``. Returns the values
        logged, or {} at other steps."""
        if not (force or self.due(step)):
            return {}
        values = {**self.measure(step), "trainer/step": int(step), **self.width_keys()}
        if run is not None:
            run.log(values)
        return values

    def width_keys(self) -> dict[str, float]:
        sigma_r, sigma_z = self.widths
        if sigma_r is None or sigma_z is None:
            return {}
        return {"dynamics/sigma_R": float(sigma_r), "dynamics/sigma_Z": float(sigma_z)}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue the same curves: the widths and the last step."""
        sigma_r, sigma_z = self.widths
        return {"sigma_r": sigma_r, "sigma_z": sigma_z, "last_step": self.last_step, "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("size") not in (None, self.size):
            saved = state["size"]
            raise InstrumentError(f"the saved instrument measured {saved} probe images, this one holds {self.size}")
        widths = {k: state[k] for k in ("sigma_r", "sigma_z") if state.get(k) is not None}
        if widths:
            self.monitor.settings = dataclasses.replace(self.monitor.settings, **widths)
        self.last_step = state.get("last_step")


__all__ = [
    "INSTRUMENT_METRICS",
    "InstrumentError",
    "ProbeInstrument",
    "draw_views",
    "embed_attributes",
    "embed_modules",
    "measuring_mode",
]
