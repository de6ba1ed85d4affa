"""The weight controller: alpha and beta for every step.

Design notes: docs/training.md, "Design notes: controller".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from adadim.dynamics import effective_rank

if TYPE_CHECKING:
    from .steering import SteeringController

METHODS = ("adadim", "vicreg", "simclr", "barlow", "fixed", "linear", "cosine", "steer", "byol")


@dataclass
class LossWeights:
    alpha: float
    beta: float


class WeightController:
    def __init__(
        self,
        method: str,
        total_steps: int,
        gamma: float = 0.0,
        alpha: float = 0.5,
        alpha_start: float = 0.0,
        alpha_end: float = 1.0,
        every: int = 10,
        ema: float = 0.0,
        normalization: str = "dim",
        invert: bool = False,
        alpha_min: float = 0.0,
        alpha_max: float = 1.0,
        initial_alpha: float = 0.5,
        steering: SteeringController | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if (method == "steer") != (steering is not None):
            raise ValueError("method=steer needs a steering controller, and only it takes one")
        if normalization not in ("dim", "log"):
            raise ValueError(f"unknown normalization {normalization!r}; choose 'dim' or 'log'")
        self.method, self.total_steps, self.gamma = method, max(1, int(total_steps)), float(gamma)
        self.fixed_alpha, self.alpha_start, self.alpha_end = float(alpha), float(alpha_start), float(alpha_end)
        self.every, self.ema, self.normalization, self.invert = int(every), float(ema), normalization, bool(invert)
        self.alpha_min, self.alpha_max = float(alpha_min), float(alpha_max)
        self.current = float(initial_alpha)  # AdaDim state: the alpha in force
        self.erank_norm = math.nan
        self.steering = steering

    def needs_embedding(self, step: int) -> bool:
        return self.method == "adadim" and step % self.every == 0

    def normalized_erank(self, z: torch.Tensor) -> float:
        n, d = z.shape
        erank = float(effective_rank(z.detach().float()))
        top = min(n, d)
        if self.normalization == "dim":
            return erank / top
        return math.log(erank) / math.log(top) if top > 1 else 0.0

    def progress(self, step: int) -> float:
        return min(1.0, step / max(1, self.total_steps - 1))

    def step(self, step: int, z: torch.Tensor | None = None, ratio: float | None = None) -> LossWeights:
        """The weights for optimizer step `step` (0-based); `z` is needed when `needs_embedding`.
        ``ratio``: method=steer's measured H(R) / I_excess at a measuring step (None between
        them, where α holds)."""
        if self.method == "steer":
            assert self.steering is not None  # built for method=steer
            if ratio is not None:
                self.steering.update(step, self.progress(step), ratio)
            alpha = self.steering.alpha
        elif self.method == "adadim":
            if self.needs_embedding(step):
                if z is None:
                    raise ValueError("AdaDim needs this step's embedding Z to update alpha")
                self.erank_norm = self.normalized_erank(z)
                target = 1.0 - self.erank_norm if self.invert else self.erank_norm
                first = step == 0
                self.current = target if first or self.ema == 0 else self.ema * self.current + (1 - self.ema) * target
                self.current = min(self.alpha_max, max(self.alpha_min, self.current))
            alpha = self.current
        elif self.method == "byol":
            return LossWeights(alpha=math.nan, beta=math.nan)
        elif self.method in ("vicreg", "barlow"):
            alpha = 0.0
        elif self.method == "simclr":
            alpha = 1.0
        elif self.method == "fixed":
            alpha = self.fixed_alpha
        else:
            progress = self.progress(step)
            if self.method == "cosine":
                progress = 0.5 * (1.0 - math.cos(math.pi * progress))
            alpha = self.alpha_start + (self.alpha_end - self.alpha_start) * progress
        return LossWeights(alpha=alpha, beta=self.gamma * alpha)

    def state_dict(self) -> dict:
        state: dict[str, Any] = {"current": self.current, "erank_norm": self.erank_norm}
        if self.steering is not None:
            state["steering"] = self.steering.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.current, self.erank_norm = float(state["current"]), float(state["erank_norm"])
        if self.steering is not None:
            self.steering.load_state_dict(state["steering"])
