"""Image operations on a whole batch N×C×H×W of floats in [0, 1], each sample with its own
parameter (a tensor of length N). No randomness here: `augment.py` draws the parameters.

The colour operations follow torchvision's definitions (``transforms.v2.functional``:
``adjust_brightness``, ``adjust_contrast``, ``adjust_saturation``, ``adjust_hue``,
``rgb_to_grayscale``, ``gaussian_blur``, ``solarize``), so a per-sample loop over torchvision
gives the same images; the tests check that. Geometry is one ``affine_grid``/``grid_sample``
per batch (bilinear, ``align_corners=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)


def warp(x: torch.Tensor, theta: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Resample every image through its own 2×3 matrix, which maps output coordinates to input
    coordinates, both normalized to [-1, 1] (the ``affine_grid`` convention). ``padding``:
    "zeros" (black outside the image) or "border" (edge pixels repeat, as a resize does)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def affine_theta(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The output-to-input matrices of the forward maps p -> s·Rot(angle)·p + shift
    (angle in radians, counter-clockwise on screen; shift N×2 as (x, y) in normalized units)."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # Inverse of s·Rot(a) is Rot(-a)/s; on screen y points down, so counter-clockwise is Rot(-a).
    inverse = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    offset = -(inverse @ shift.unsqueeze(-1))
    return torch.cat([inverse, offset], -1)


def crop_theta(top, left, height, width, flip, image_height: int, image_width: int) -> torch.Tensor:
    """Matrices that resize the box (top, left, height, width), in pixels, to the whole output,
    mirrored left-right where ``flip`` is true: crop, resize and flip in one resampling."""
    sx = width / image_width
    sy = height / image_height
    tx = (2 * left + width) / image_width - 1
    ty = (2 * top + height) / image_height - 1
    sx = torch.where(flip, -sx, sx)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], -2)


def erase(x: torch.Tensor, top, left, height, width, apply: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Set the box (top, left, height, width), in whole pixels, to ``value`` where ``apply``."""
    rows = torch.arange(x.shape[-2], device=x.device).reshape(1, -1, 1)
    cols = torch.arange(x.shape[-1], device=x.device).reshape(1, 1, -1)
    top, left, height, width = (v.reshape(-1, 1, 1) for v in (top, left, height, width))
    inside = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    inside = inside & apply.reshape(-1, 1, 1)
    return x.masked_fill(inside.unsqueeze(1), value)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luma of RGB images (a copy of single-channel images)."""
    if x.shape[1] == 1:
        return x.clone()
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = _per_sample(factor)
    return (factor * x + (1 - factor) * other).clamp(0, 1)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_sample(factor)).clamp(0, 1)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else _blend(x, grayscale(x), factor)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    s = chroma / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    # The first channel holding the maximum decides the sector (red, then green, then blue).
    h = torch.where(maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(chroma > 0, h / 6, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = (c.unsqueeze(1) for c in hsv.unbind(1))
    n = torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype).reshape(1, 3, 1, 1)
    k = (n + 6 * h) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5])."""
    if x.shape[1] == 1:
        return x
    hsv = _rgb_to_hsv(x)
    h = (hsv[:, 0] + shift.reshape(-1, 1, 1)) % 1.0
    return _hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], 1)).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma and reflect padding (torchvision's)."""
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype).reshape(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N·C)×K
    pad = kernel_size // 2
    flat = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernel.reshape(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernel.reshape(n * c, 1, kernel_size, 1), groups=n * c)
    return flat.reshape(n, c, h, w)


def solarize(x: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.where(x >= threshold, 1 - x, x)


def where_sample(apply: torch.Tensor, changed: torch.Tensor, unchanged: torch.Tensor) -> torch.Tensor:
    """``changed`` for the samples where ``apply`` is true, ``unchanged`` elsewhere."""
    return torch.where(_per_sample(apply), changed, unchanged)


__all__ = [
    "affine_theta",
    "brightness",
    "contrast",
    "crop_theta",
    "erase",
    "gaussian_blur",
    "grayscale",
    "hue",
    "saturation",
    "solarize",
    "warp",
    "where_sample",
]
