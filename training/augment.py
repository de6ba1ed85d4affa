"""Two-view SSL augmentation of whole batches on the training device.

Design notes: docs/training.md, "Design notes: augment".
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields, replace

import torch

from . import batch_ops as ops


@dataclass(frozen=True)
class DigitsStrengths:
    rotation_deg: float = 10.0  # angle uniform in ±rotation_deg
    scale: tuple[float, float] = (0.9, 1.1)
    shift_px: float = 1.0  # shift uniform in ±shift_px pixels, along x and y
    noise_std: float = 0.1  # Gaussian pixel noise, in the units of the pixel values
    clip: bool = True  # clamp to [0, 1] after the noise
    erase_p: float = 0.5
    erase_px: tuple[int, int] = (2, 3)  # erased rectangle: height and width each in this range


@dataclass(frozen=True)
class ColorStrengths:
    crop_scale: tuple[float, float] = (0.2, 1.0)  # crop area, as a fraction of the image
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio (width / height)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    flip_p: float = 0.5
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 23
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5


PRESETS: dict[str, DigitsStrengths | ColorStrengths] = {
    "digits": DigitsStrengths(),
    "cifar": ColorStrengths(),
    "imagenet": ColorStrengths(crop_scale=(0.08, 1.0), blur_p=0.5, solarize_p=0.1),
}


def view_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed for (run seed, step, rank); a hash, so nearby triples give unrelated streams."""
    digest = hashlib.blake2b(f"adadim-views:{seed}:{step}:{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _bernoulli(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) < p


def _randint(low: int, high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Integers (as floats) uniform in [low, high], both included."""
    return (low + torch.rand(n, generator=generator, device=generator.device) * (high - low + 1)).floor()


def crop_boxes(n: int, height: int, width: int, scale, ratio, generator: torch.Generator):
    """(top, left, box height, box width) per sample, by torchvision's RandomResizedCrop rule:
    up to 10 tries of an area fraction uniform in ``scale`` and a log-uniform aspect ratio, the
    first box that fits wins, else the central crop clamped to ``ratio``."""
    tries = 10
    area = height * width * _uniform(scale[0], scale[1], n * tries, generator).reshape(n, tries)
    aspect = torch.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), n * tries, generator)).reshape(n, tries)
    w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(1, keepdim=True)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = round(height * max(ratio)), height
    else:
        fallback_w, fallback_h = width, height
    found = fits.any(1)
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    top = torch.where(found, _scaled_floor(height - h + 1, generator), (height - h) // 2)
    left = torch.where(found, _scaled_floor(width - w + 1, generator), (width - w) // 2)
    return top, left, h, w


def _scaled_floor(upper: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Integers (as floats) uniform in [0, upper), with a per-sample ``upper``."""
    return (torch.rand(upper.shape, generator=generator, device=generator.device) * upper).floor()


class BatchAugmenter:
    """Two seeded, per-sample-random views of a batch, on ``device`` (see the module docstring).

    ``strengths`` override the preset's fields (`DigitsStrengths` or `ColorStrengths`);
    ``mean``/``std`` (per channel) normalize the views last.
    """

    def __init__(
        self,
        preset: str,
        image_size: int,
        seed: int,
        rank: int = 0,
        device: torch.device | str = "cpu",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        **strengths,
    ) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
        base = PRESETS[preset]
        unknown = sorted(set(strengths) - {f.name for f in fields(base)})
        if unknown:
            raise ValueError(f"unknown strengths {unknown} for preset {preset!r}; choose from {_names(base)}")
        self.preset, self.image_size, self.seed, self.rank = preset, image_size, seed, rank
        self.device = torch.device(device)
        self.strengths = replace(base, **strengths)
        if isinstance(self.strengths, ColorStrengths) and self.strengths.blur_p > 0:
            if self.strengths.blur_kernel % 2 == 0 or self.strengths.blur_kernel // 2 >= image_size:
                raise ValueError(f"blur_kernel must be odd and its half smaller than the image size {image_size}")
        self.mean = None if mean is None else torch.tensor(mean, device=self.device).reshape(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, device=self.device).reshape(1, -1, 1, 1)

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(view_seed(self.seed, step, self.rank))

    def views(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views of batch ``x`` at optimizer step ``step``, as float32 on the device."""
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"expected a batch N×C×{self.image_size}×{self.image_size}, got {tuple(x.shape)}")
        x = x.to(self.device, non_blocking=True)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        generator = self.generator(step)
        return self.view(x, generator), self.view(x, generator)

    def view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view of x (floats in [0, 1] on the device) under ``generator``."""
        if isinstance(self.strengths, DigitsStrengths):
            out = _digits_view(x, self.strengths, generator)
        else:
            out = _color_view(x, self.strengths, generator)
        if self.mean is not None and self.std is not None:
            out = (out - self.mean) / self.std
        return out


def _names(strengths) -> str:
    return ", ".join(f.name for f in fields(strengths))


def digits_params(n: int, size: int, s: DigitsStrengths, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample parameters of one digits view: the affine matrix and the erased box."""
    angle = torch.deg2rad(_uniform(-s.rotation_deg, s.rotation_deg, n, generator))
    scale = _uniform(s.scale[0], s.scale[1], n, generator)
    shift = _uniform(-s.shift_px, s.shift_px, 2 * n, generator).reshape(n, 2) * (2 / size)  # px -> [-1, 1] units
    erase_h = _randint(s.erase_px[0], s.erase_px[1], n, generator)
    erase_w = _randint(s.erase_px[0], s.erase_px[1], n, generator)
    return {
        "theta": ops.affine_theta(angle, scale, shift),
        "erase": _bernoulli(s.erase_p, n, generator),
        "erase_top": _scaled_floor(size - erase_h + 1, generator),
        "erase_left": _scaled_floor(size - erase_w + 1, generator),
        "erase_height": erase_h,
        "erase_width": erase_w,
    }


def _digits_view(x: torch.Tensor, s: DigitsStrengths, generator: torch.Generator) -> torch.Tensor:
    p = digits_params(x.shape[0], x.shape[-1], s, generator)
    out = ops.warp(x, p["theta"], padding="zeros")
    noise = torch.randn(out.shape, generator=generator, device=generator.device)
    out = out + s.noise_std * noise
    if s.clip:
        out = out.clamp(0, 1)
    return ops.erase(out, p["erase_top"], p["erase_left"], p["erase_height"], p["erase_width"], p["erase"])


def color_params(n: int, size: int, s: ColorStrengths, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample parameters of one colour-preset view."""
    top, left, h, w = crop_boxes(n, size, size, s.crop_scale, s.crop_ratio, generator)
    b, c, sat, hue = s.jitter
    return {
        "flip": _bernoulli(s.flip_p, n, generator),
        "box": torch.stack([top, left, h, w], 1),
        "jitter": _bernoulli(s.jitter_p, n, generator),
        # Factors as torchvision's ColorJitter draws them: uniform in [max(0, 1 - v), 1 + v], hue in [-v, v].
        "factors": torch.stack(
            [
                _uniform(max(0.0, 1 - b), 1 + b, n, generator),
                _uniform(max(0.0, 1 - c), 1 + c, n, generator),
                _uniform(max(0.0, 1 - sat), 1 + sat, n, generator),
                _uniform(-hue, hue, n, generator),
            ],
            1,
        ),
        "order": torch.rand(n, 4, generator=generator, device=generator.device).argsort(1),  # a permutation each
        "grayscale": _bernoulli(s.grayscale_p, n, generator),
        "blur": _bernoulli(s.blur_p, n, generator),
        "sigma": _uniform(s.blur_sigma[0], s.blur_sigma[1], n, generator),
        "solarize": _bernoulli(s.solarize_p, n, generator),
    }


COLOR_OPS = (ops.brightness, ops.contrast, ops.saturation, ops.hue)


def _on_subset(x: torch.Tensor, chosen: torch.Tensor, fn) -> torch.Tensor:
    """fn(x[idx], idx) written back into a copy of x for the samples where ``chosen``; the
    others are not computed at all (cheaper than a masked where over the whole batch)."""
    idx = chosen.nonzero().flatten()
    if len(idx) == 0:
        return x
    out = x.clone()
    out[idx] = fn(x[idx], idx)
    return out


def _color_view(x: torch.Tensor, s: ColorStrengths, generator: torch.Generator) -> torch.Tensor:
    n, size = x.shape[0], x.shape[-1]
    p = color_params(n, size, s, generator)
    top, left, h, w = p["box"].unbind(1)
    # Crop, resize and flip in one resampling; "border" padding as a resize clamps at the edges.
    out = ops.warp(x, ops.crop_theta(top, left, h, w, p["flip"], size, size), padding="border")
    for position in range(4):
        for k, op in enumerate(COLOR_OPS):
            chosen = p["jitter"] & (p["order"][:, position] == k)
            out = _on_subset(out, chosen, lambda xs, idx, op=op, k=k: op(xs, p["factors"][idx, k]))
    if out.shape[1] == 3:
        out = ops.where_sample(p["grayscale"], ops.grayscale(out).expand_as(out), out)
    if s.blur_p > 0:
        out = _on_subset(out, p["blur"], lambda xs, idx: ops.gaussian_blur(xs, p["sigma"][idx], s.blur_kernel))
    if s.solarize_p > 0:
        out = ops.where_sample(p["solarize"], ops.solarize(out, s.solarize_threshold), out)
    return out


__all__ = ["PRESETS", "BatchAugmenter", "ColorStrengths", "DigitsStrengths", "crop_boxes", "view_seed"]
