"""``DynamicsCallback``: the probe-set dynamics inside a PyTorch Lightning training.

    from adadim.training.callbacks import DynamicsCallback
    trainer = lightning.Trainer(callbacks=[DynamicsCallback(views=(view1, view2), every=50)])

It measures the fixed probe views (``adadim.dynamics.draw_views``) with a
``adadim.dynamics.ProbeInstrument`` at the start of training, every ``every`` optimizer steps
and at the last step, and logs the ``dynamics/`` keys with ``trainer/step`` through the
trainer's loggers (``WandbLogger`` online or offline, ``CSVLogger``, ...). Under DDP every rank
measures the whole probe (same numbers, no communication) and rank 0 logs. Its state (the
Gaussian widths and the last measured step) travels in Lightning checkpoints, so a resumed run
continues the same curves. The measurement leaves the module's weights, BatchNorm statistics,
train/eval modes and the global RNG exactly as they were.

A module that exposes the named terms of its loss (``self.loss_terms = LossTerms({...}, z)`` in
``training_step``) also gets each term's gradient norm with respect to Z and its share of their
sum at the measuring steps, as ``adadim train`` logs them (``adadim/grad_norm_<name>``,
``adadim/grad_share_<name>``).

Lightning is an optional extra: ``pip install 'adadim[lightning]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from adadim.dynamics.instrument import ProbeInstrument
from adadim.dynamics.monitor import MonitorSettings

from .losses.gradient_shares import norm_shares, term_gradient_norms

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as error:  # the extra is not installed
    raise ImportError(
        "adadim.training.callbacks needs Lightning: pip install 'adadim[lightning]' (lightning>=2.2)"
    ) from error


LOSS_TERMS = "loss_terms"  # the module attribute the callback reads the terms from


@dataclass(frozen=True)
class LossTerms:
    """The named terms of a module's loss on the current batch, for the gradient shares.

    - ``terms``: name -> scalar tensor, each term as it enters the loss (weights included),
      still in the graph;
    - ``z``: the tensors the gradients are taken with respect to (the batch's Z views).
    """

    terms: Mapping[str, torch.Tensor]
    z: Sequence[torch.Tensor]


class DynamicsCallback(Callback):
    """Measure H(R), I_excess(R;Z), effective ranks, ... of a LightningModule on a fixed probe.

    - ``views``: ``(view1, view2)``, two tensors N×... of the same N ≥ 2 images.
    - ``every``: measure every this many optimizer steps (and at the first and last step).
    - ``embed``: ``x -> (R, Z)``, called with the module's own weights; default: the module's
      ``backbone`` and ``projector`` attributes (R = backbone(x), Z = projector(R)).
    - ``settings``: a ``MonitorSettings`` (metrics, order, kernel, widths); default: the
      monitor's defaults less the sampled permutation baseline (``INSTRUMENT_METRICS``).
    - ``chunk``, ``norm``: images per forward pass, and "batch" (BatchNorm on each fixed chunk,
      running statistics put back) or "running" (eval mode); see ``ProbeInstrument``.

    When the module's ``loss_terms`` attribute holds a ``LossTerms`` at a measuring step's
    backward pass, the gradient norms and shares of its terms are logged at that step too.
    """

    def __init__(
        self,
        views: tuple[torch.Tensor, torch.Tensor],
        every: int = 50,
        embed: Callable | None = None,
        settings: MonitorSettings | None = None,
        chunk: int = 512,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if not (isinstance(views, (tuple, list)) and len(views) == 2):
            raise ValueError("views must be a pair (view1, view2) of tensors of the same N images")
        self.views, self.every, self.embed, self.settings = views, every, embed, settings
        self.chunk, self.norm = chunk, norm
        self.instrument: ProbeInstrument | None = None
        self._shares_step: int | None = None  # the last step whose gradient shares were logged
        self._pending_state: dict | None = None
        # Build once here, so a bad probe or setting fails before any training.
        self._build(None)

    def _build(self, module: torch.nn.Module | None) -> ProbeInstrument:
        embed = self.embed
        if embed is None and module is None:
            embed = _unbound  # replaced in setup, once the module is known
        instrument = ProbeInstrument(
            *self.views, embed, model=module, settings=self.settings, every=self.every, chunk=self.chunk, norm=self.norm
        )
        if self.instrument is not None:
            instrument.load_state_dict(self.instrument.state_dict())
        self.instrument = instrument
        return instrument

    @property
    def state_key(self) -> str:
        return "DynamicsCallback"

    def setup(self, trainer, pl_module, stage: str) -> None:
        instrument = self._build(pl_module)
        if self._pending_state is not None:
            instrument.load_state_dict(self._pending_state)
            self._pending_state = None

    def _ready(self) -> ProbeInstrument:
        if self.instrument is None:
            raise RuntimeError("DynamicsCallback used before the trainer's setup")
        return self.instrument

    def state_dict(self) -> dict:
        return self.instrument.state_dict() if self.instrument is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if self.instrument is not None and self.instrument.model is not None:
            self.instrument.load_state_dict(state_dict)
        else:
            self._pending_state = dict(state_dict)

    def _measure(self, trainer, step: int) -> None:
        instrument = self._ready()
        if instrument.last_step == step:
            return
        _log(trainer, instrument.log(step, force=True), step)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        # Before backward the graph is whole: the batch's terms, at the weights of this step.
        step = trainer.global_step
        exposed = getattr(pl_module, LOSS_TERMS, None)
        if exposed is None or self._shares_step == step or not self._ready().due(step):
            return
        self._shares_step = step  # once per step, also under gradient accumulation
        _log(trainer, {**gradient_share_keys(exposed), "trainer/step": step}, step)

    def on_train_start(self, trainer, pl_module) -> None:
        self._measure(trainer, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step > 0 and self._ready().due(step):
            self._measure(trainer, step)

    def on_train_end(self, trainer, pl_module) -> None:
        self._measure(trainer, trainer.global_step)
        for logger in trainer.loggers:
            logger.save()


def gradient_share_keys(exposed: LossTerms) -> dict[str, float]:
    """``adadim/grad_norm_<name>`` and ``adadim/grad_share_<name>`` of each exposed term."""
    if not isinstance(exposed, LossTerms) or not exposed.terms:
        raise TypeError(f"the module's {LOSS_TERMS} must be a LossTerms of at least one term, got {exposed!r}")
    norms = term_gradient_norms(exposed.terms, exposed.z)
    shares = norm_shares(norms)
    values = {f"adadim/grad_norm_{name}": float(norm) for name, norm in norms.items()}
    values.update({f"adadim/grad_share_{name}": float(share) for name, share in shares.items()})
    return values


def _log(trainer, values: dict[str, float], step: int) -> None:
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)


def _unbound(x):
    raise RuntimeError("DynamicsCallback measured before setup bound it to a LightningModule")


__all__ = ["LOSS_TERMS", "DynamicsCallback", "LossTerms", "gradient_share_keys"]
