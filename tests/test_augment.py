"""Batched on-device augmentation: seeding, per-sample randomness, the ops against torchvision,
the parameter distributions against their known laws, and the device-mode data path."""

from __future__ import annotations

import math

import pytest
import torch
from adadim.training import batch_ops as ops
from adadim.training.augment import (
    BatchAugmenter,
    ColorStrengths,
    DigitsStrengths,
    color_params,
    crop_boxes,
    digits_params,
)
from adadim.training.config import ConfigError, load_config
from adadim.training.data import (
    BatchedImages,
    GlobalBatchSampler,
    Splits,
    Transformed,
    TwoViews,
    build_augmenter,
    load_splits,
    train_loader,
    training_dataset,
)
from scipy import stats
from torchvision.transforms.v2 import functional as TF

IDENTITY_DIGITS = dict(rotation_deg=0.0, scale=(1.0, 1.0), shift_px=0.0, noise_std=0.0, erase_p=0.0)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().images[:256], dtype=torch.float32).unsqueeze(1) / 16


def _binomial_ok(successes: int, n: int, p: float) -> bool:
    return abs(successes - n * p) <= 5 * math.sqrt(n * p * (1 - p))


# ---- seeding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,size,channels", [("digits", 8, 1), ("cifar", 16, 3), ("imagenet", 32, 3)])
def test_same_seed_step_rank_gives_bit_identical_views_and_others_differ(preset, size, channels):
    x = torch.rand(16, channels, size, size, generator=torch.Generator().manual_seed(1))
    make = lambda seed=0, rank=0: BatchAugmenter(preset, size, seed, rank)  # noqa: E731
    a1, a2 = make().views(x, 7)
    b1, b2 = make().views(x, 7)  # a fresh object: nothing carried over between calls
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2), "the two views of one step must differ"
    for other in (make().views(x, 8), make(rank=1).views(x, 7), make(seed=1).views(x, 7)):
        assert not torch.equal(other[0], a1)


def test_views_ignore_and_leave_alone_the_global_rng(digits):
    augmenter = BatchAugmenter("digits", 8, seed=3)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = augmenter.views(digits, 5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12345)
    again = augmenter.views(digits, 5)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


# ---- per-sample randomness, shapes, input checks ------------------------------------------------


def test_every_sample_gets_its_own_parameters():
    same = torch.rand(1, 1, 8, 8).expand(32, 1, 8, 8)
    v1, _ = BatchAugmenter("digits", 8, 0, noise_std=0.0, erase_p=0.0).views(same, 0)
    flat = v1.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(32)).min() > 1e-4, "two samples got the same affine map"
    rgb = torch.rand(1, 3, 16, 16).expand(32, 3, 16, 16)
    v1, _ = BatchAugmenter("cifar", 16, 0).views(rgb, 0)
    flat = v1.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(32)).min() > 1e-4


def test_shapes_dtypes_devices_and_uint8_input():
    x = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    augmenter = BatchAugmenter("cifar", 16, 0, device="cpu")
    v1, v2 = augmenter.views(x, 0)
    for v in (v1, v2):
        assert v.shape == (10, 3, 16, 16) and v.dtype == torch.float32 and v.device.type == "cpu"
        assert 0 <= float(v.min()) and float(v.max()) <= 1
    # uint8 is read as value / 255: the same views as the float image
    f1, _ = augmenter.views(x.float() / 255, 0)
    assert torch.allclose(v1, f1, atol=1e-6)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    n1, _ = BatchAugmenter("cifar", 16, 0, mean=mean, std=std).views(x, 0)
    expected = (v1 - torch.tensor(mean).reshape(1, 3, 1, 1)) / torch.tensor(std).reshape(1, 3, 1, 1)
    assert torch.allclose(n1, expected, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_views_on_the_gpu_are_reproducible():
    x = torch.rand(64, 3, 32, 32)
    augmenter = BatchAugmenter("cifar", 32, 0, device="cuda")
    a, b = augmenter.views(x, 3), augmenter.views(x.cuda(), 3)
    assert a[0].is_cuda and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown augmentation preset 'mnist'"):
        BatchAugmenter("mnist", 8, 0)
    with pytest.raises(ValueError, match=r"unknown strengths \['flip_p'\] for preset 'digits'"):
        BatchAugmenter("digits", 8, 0, flip_p=0.5)
    with pytest.raises(ValueError, match=r"expected a batch N×C×8×8, got \(4, 1, 9, 9\)"):
        BatchAugmenter("digits", 8, 0).views(torch.zeros(4, 1, 9, 9), 0)
    with pytest.raises(ValueError, match="blur_kernel must be odd"):
        BatchAugmenter("imagenet", 8, 0)  # reflect padding of the 23-tap kernel needs images over 11 px


# ---- the digits preset ----------------------------------------------------------------------


def test_digits_with_zero_strengths_is_the_identity(digits):
    v1, v2 = BatchAugmenter("digits", 8, 0, **IDENTITY_DIGITS).views(digits, 0)
    assert torch.allclose(v1, digits, atol=1e-6) and torch.allclose(v2, digits, atol=1e-6)


def test_digits_never_flip_and_draw_the_stated_laws():
    s, n = DigitsStrengths(), 20_000
    p = digits_params(n, 8, s, torch.Generator().manual_seed(0))
    linear = p["theta"][:, :, :2]
    assert (torch.linalg.det(linear) > 0).all(), "a negative determinant is a mirror image"
    # The output-to-input map is Rot(-a)/s: recover the forward angle and scale from it.
    angle = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0]))
    scale = 1 / torch.linalg.det(linear).sqrt()
    assert stats.kstest(angle.numpy(), stats.uniform(-10, 20).cdf).pvalue > 1e-3
    assert stats.kstest(scale.numpy(), stats.uniform(0.9, 0.2).cdf).pvalue > 1e-3
    shift_px = -(torch.linalg.inv(linear) @ p["theta"][:, :, 2:])[:, :, 0] * 8 / 2
    assert stats.kstest(shift_px[:, 0].numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert _binomial_ok(int(p["erase"].sum()), n, 0.5)
    sizes = torch.stack([p["erase_height"], p["erase_width"]], 1)
    assert set(map(tuple, sizes.int().tolist())) == {(2, 2), (2, 3), (3, 2), (3, 3)}
    assert (p["erase_top"] >= 0).all() and (p["erase_top"] + p["erase_height"] <= 8).all()
    assert (p["erase_left"] >= 0).all() and (p["erase_left"] + p["erase_width"] <= 8).all()


def test_digits_views_stay_in_range_and_keep_their_orientation(digits):
    v1, v2 = BatchAugmenter("digits", 8, 0).views(digits, 0)
    for v in (v1, v2):
        assert float(v.min()) >= 0 and float(v.max()) <= 1
        assert abs(float(v.mean() - digits.mean())) < 0.1
        # A view resembles its own digit more than the mirrored digit, for most clearly asymmetric
        # digits; a mirrored view (the control) does the opposite.
        asymmetric = (digits - digits.flip(-1)).flatten(1).norm(dim=1) > 2.0
        for view, low, high in ((v, 0.8, 1.0), (v.flip(-1), 0.0, 0.2)):
            near = (view - digits).flatten(1).norm(dim=1)
            mirrored = (view - digits.flip(-1)).flatten(1).norm(dim=1)
            assert low <= float((near < mirrored)[asymmetric].float().mean()) <= high
    unclipped, _ = BatchAugmenter("digits", 8, 0, clip=False).views(digits, 0)
    assert float(unclipped.min()) > -0.7 and float(unclipped.max()) < 1.7  # noise sigma 0.1


def test_digits_erasing_blanks_one_2_to_3_pixel_rectangle():
    ones = torch.ones(400, 1, 8, 8)
    identity = {**IDENTITY_DIGITS, "erase_p": 1.0}
    v1, _ = BatchAugmenter("digits", 8, 0, **identity).views(ones, 0)
    for image in v1[:, 0]:
        rows, cols = torch.nonzero(image < 0.5, as_tuple=True)
        h, w = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
        assert h in (2, 3) and w in (2, 3) and len(rows) == h * w  # a full rectangle, nothing else


def test_affine_theta_rotates_and_shifts_like_exact_pixel_moves():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    quarter = ops.affine_theta(one * math.pi / 2, one, torch.zeros(1, 2, dtype=torch.float64))
    rotated = ops.warp(x, quarter)
    assert torch.allclose(rotated, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-12)  # counter-clockwise on screen
    right = ops.affine_theta(0 * one, one, torch.tensor([[2 / 8, 0.0]], dtype=torch.float64))  # +1 px along x
    shifted = ops.warp(x, right)
    assert torch.allclose(shifted[..., 1:], x[..., :-1], atol=1e-12) and (shifted[..., 0] == 0).all()


# ---- the colour presets ---------------------------------------------------------------------


def test_crop_with_flip_matches_torchvision_resized_crop():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    top, left, h, w = (torch.tensor([v, v], dtype=torch.float64) for v in (5.0, 7.0, 16.0, 20.0))
    flip = torch.tensor([False, True])
    out = ops.warp(x, ops.crop_theta(top, left, h, w, flip, 32, 32), padding="border")
    expected = TF.resized_crop(x, 5, 7, 16, 20, [32, 32], antialias=False)
    # torchvision clamps at the crop's edge, the warp reads the pixel beyond it: compare inside.
    assert torch.allclose(out[0, :, 1:-1, 1:-1], expected[0, :, 1:-1, 1:-1], atol=1e-10)
    assert torch.allclose(out[1, :, 1:-1, 1:-1], expected[1].flip(-1)[:, 1:-1, 1:-1], atol=1e-10)
    whole = ops.warp(x, ops.crop_theta(0 * top, 0 * left, 0 * h + 32, 0 * w + 32, flip, 32, 32), padding="border")
    assert torch.allclose(whole[0], x[0], atol=1e-12) and torch.allclose(whole[1], x[1].flip(-1), atol=1e-12)


def test_crop_boxes_follow_torchvision_random_resized_crop():
    from torchvision.transforms.v2 import RandomResizedCrop

    n, scale, ratio = 4000, (0.2, 1.0), (3 / 4, 4 / 3)
    top, left, h, w = crop_boxes(n, 32, 32, scale, ratio, torch.Generator().manual_seed(0))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    assert (h == h.round()).all() and (w == w.round()).all() and (h >= 1).all()
    reference = RandomResizedCrop(32, scale=scale, ratio=ratio)
    torch.manual_seed(0)
    ref = [reference.make_params([torch.zeros(3, 32, 32)]) for _ in range(n)]
    ref_area = torch.tensor([r["height"] * r["width"] for r in ref], dtype=torch.float64)
    ref_top = torch.tensor([r["top"] for r in ref], dtype=torch.float64)
    assert stats.ks_2samp((h * w).numpy(), ref_area.numpy()).pvalue > 1e-3
    assert stats.ks_2samp((w / h).numpy(), [r["width"] / r["height"] for r in ref]).pvalue > 1e-3
    assert stats.ks_2samp(top.numpy(), ref_top.numpy()).pvalue > 1e-3
    # No box fits an area of 1 at aspect 2 on a square: every sample falls back to the central crop.
    top, left, h, w = crop_boxes(50, 32, 32, (1.0, 1.0), (2.0, 2.0), torch.Generator().manual_seed(0))
    assert (w == 32).all() and (h == 16).all() and (top == 8).all() and (left == 0).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_ops_match_torchvision_per_sample(channels):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, channels, 32, 32, generator=g, dtype=torch.float64)
    factor = torch.tensor([0.6, 0.8, 1.0, 1.1, 1.3, 1.4], dtype=torch.float64)
    shift = torch.tensor([-0.1, -0.05, 0.0, 0.02, 0.07, 0.1], dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 1.9, 2.0], dtype=torch.float64)
    cases = [
        (ops.brightness(x, factor), [TF.adjust_brightness(x[i], float(factor[i])) for i in range(6)]),
        (ops.contrast(x, factor), [TF.adjust_contrast(x[i], float(factor[i])) for i in range(6)]),
        (ops.saturation(x, factor), [TF.adjust_saturation(x[i], float(factor[i])) for i in range(6)]),
        (ops.hue(x, shift), [TF.adjust_hue(x[i], float(shift[i])) for i in range(6)]),
        (ops.gaussian_blur(x, sigma, 23), [TF.gaussian_blur(x[i], [23, 23], [float(sigma[i])] * 2) for i in range(6)]),
        (ops.solarize(x, 0.5), [TF.solarize(x[i], 0.5) for i in range(6)]),
    ]
    if channels == 3:
        cases.append((ops.grayscale(x), [TF.rgb_to_grayscale(x[i]) for i in range(6)]))
    for ours, theirs in cases:
        assert torch.allclose(ours, torch.stack(theirs), atol=1e-6)


def test_colour_parameters_follow_the_stated_probabilities():
    s, n = ColorStrengths(blur_p=0.5, solarize_p=0.1), 8000
    p = color_params(n, 32, s, torch.Generator().manual_seed(0))
    for key, prob in (("flip", 0.5), ("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.5), ("solarize", 0.1)):
        assert _binomial_ok(int(p[key].sum()), n, prob), key
    assert (p["order"].sort(1).values == torch.arange(4)).all(), "each order must be a permutation"
    assert len({tuple(o) for o in p["order"].tolist()}) == 24
    low = torch.tensor([0.6, 0.6, 0.8, -0.1], dtype=p["factors"].dtype)
    high = torch.tensor([1.4, 1.4, 1.2, 0.1], dtype=p["factors"].dtype)
    for k in range(4):
        law = stats.uniform(float(low[k]), float(high[k] - low[k]))
        assert stats.kstest(p["factors"][:, k].numpy(), law.cdf).pvalue > 1e-3


def test_jitter_applies_the_four_ops_in_each_samples_own_order():
    x = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    strengths = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, grayscale_p=0.0, jitter_p=0.7)
    augmenter = BatchAugmenter("cifar", 16, 0, **strengths)
    view = augmenter.view(x, augmenter.generator(4))
    p = color_params(64, 16, augmenter.strengths, augmenter.generator(4))
    names = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(64):
        expected = x[i]
        if p["jitter"][i]:
            for k in p["order"][i].tolist():
                expected = names[k](expected, float(p["factors"][i, k]))
        assert torch.allclose(view[i], expected, atol=1e-5), i


def test_cifar_flip_only_mirrors_about_half_the_samples():
    x = torch.rand(400, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    only_flip = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0)
    v1, _ = BatchAugmenter("cifar", 8, 0, **only_flip).views(x, 0)
    same = (v1 - x).flatten(1).abs().amax(1) < 1e-6
    mirrored = (v1 - x.flip(-1)).flatten(1).abs().amax(1) < 1e-6
    assert (same ^ mirrored).all()
    assert _binomial_ok(int(mirrored.sum()), 400, 0.5)


# ---- the data path in device mode -----------------------------------------------------------


def test_device_mode_loader_yields_the_plain_images_of_the_sampler_batches():
    cfg = load_config(None, ["data.name=digits"])
    assert cfg.data.augment_on == "device"
    splits = load_splits(cfg.data)
    dataset = training_dataset(splits, cfg.data, seed=0)
    assert isinstance(dataset, BatchedImages) and len(dataset) == len(splits.ssl_train)
    sampler = GlobalBatchSampler(len(dataset), 256, seed=0)
    sampler.set_epoch(2)
    order = list(sampler)
    for b, (x, labels) in enumerate(train_loader(dataset, sampler, 0)):
        expected = [splits.ssl_train[i] for i in order[b]]
        assert torch.equal(x, torch.stack([e[0] for e in expected]))
        assert labels.tolist() == [e[1] for e in expected]
    augmenter = build_augmenter(cfg.data, splits, 0, 0, "cpu")
    assert augmenter.preset == "digits" and augmenter.mean is None
    loader_cfg = load_config(None, ["data.name=digits", "data.augment_on=loader"])
    assert isinstance(training_dataset(splits, loader_cfg.data, 0), TwoViews)
    assert build_augmenter(loader_cfg.data, splits, 0, 0, "cpu") is None


@pytest.mark.parametrize("name", ["cifar10", "stl10"])
def test_in_memory_torchvision_sets_are_served_as_their_per_image_tensors(name):
    """CIFAR (N×H×W×C) and STL-10 (N×C×H×W) arrays are fetched a batch at a time, and each
    image equals what the dataset's own per-image PIL path gives."""
    import numpy as np
    from torchvision import datasets
    from torchvision.transforms import v2

    rng = np.random.default_rng(0)
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.STL10
    dataset = object.__new__(cls)  # the arrays only: no files
    dataset.transform = dataset.target_transform = None
    if name == "cifar10":
        dataset.data, dataset.targets = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), list(range(12))
    else:
        dataset.data, dataset.labels = rng.integers(0, 256, (12, 3, 16, 16), dtype=np.uint8), np.arange(12) - 1
    subset = torch.utils.data.Subset(dataset, [11, 3, 5, 0, 7, 2])
    splits = Splits(subset, subset, subset, 10, 3, 32 if name == "cifar10" else 16)
    served = training_dataset(splits, load_config(None, []).data, 0)
    assert isinstance(served, BatchedImages) and len(served) == 6
    x, labels = served.__getitems__([4, 1, 0])
    for row, i in enumerate([4, 1, 0]):
        image, label = subset[i]
        assert torch.equal(x[row], v2.ToImage()(image).as_subclass(torch.Tensor)) and int(labels[row]) == label


def test_image_folder_of_mixed_sizes_is_resized_to_one_size_in_device_mode(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c, size in enumerate([(40, 30), (24, 36), (32, 32)]):
            folder = tmp_path / split / f"class{c}"
            folder.mkdir(parents=True)
            for k in range(3):
                Image.new("RGB", size, (40 * c, 80 * k, 120)).save(folder / f"{k}.png")
    cfg = load_config(None, ["data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0"])
    splits = load_splits(cfg.data)
    dataset = training_dataset(splits, cfg.data, seed=0)
    assert isinstance(dataset, Transformed)
    sampler = GlobalBatchSampler(len(dataset), 9, seed=0)
    x, labels = next(iter(train_loader(dataset, sampler, 0)))
    size = splits.image_size
    assert x.shape == (9, 3, size, size) and x.dtype == torch.uint8
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    augmenter = build_augmenter(cfg.data, splits, 0, 0, "cpu")
    assert augmenter.preset == "cifar" and augmenter.strengths.crop_scale == (0.08, 1.0)
    v1, _ = augmenter.views(x, 0)
    assert v1.shape == (9, 3, size, size) and torch.isfinite(v1).all()


def test_augment_on_is_validated():
    with pytest.raises(ConfigError, match=r"data\.augment_on must be device or loader, got 'gpu'"):
        load_config(None, ["data.augment_on=gpu"])


# ---- data.augment: the strengths in the config ---------------------------------------------


def test_configured_strengths_reach_the_augmenter_and_null_keeps_the_preset(digits):
    splits = load_splits(load_config(None, []).data)
    default = build_augmenter(load_config(None, []).data, splits, 0, 0, "cpu")
    assert default.strengths == DigitsStrengths()
    cfg = load_config(None, ["data.augment.rotation_deg=20", "data.augment.scale=[0.8,1.2]", "data.augment.erase_p=0"])
    augmenter = build_augmenter(cfg.data, splits, 0, 0, "cpu")
    assert augmenter.strengths == DigitsStrengths(rotation_deg=20.0, scale=(0.8, 1.2), erase_p=0.0)
    # Every strength at zero through the config: the views are the images themselves.
    zero = [f"data.augment.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in IDENTITY_DIGITS.items()]
    identity = build_augmenter(load_config(None, zero).data, splits, 0, 0, "cpu")
    v1, v2 = identity.views(digits, step=3)
    assert torch.allclose(v1, digits, atol=1e-6) and torch.allclose(v2, digits, atol=1e-6)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.augment.rotation_deg=-5", r"data\.augment\.rotation_deg must be >= 0, got -5"),
        ("data.augment.noise_std=-0.1", r"data\.augment\.noise_std must be >= 0"),
        ("data.augment.erase_p=1.5", r"data\.augment\.erase_p must be in \[0, 1\], got 1\.5"),
        ("data.augment.scale=[1.2,0.8]", r"data\.augment\.scale must be \[low, high\] with 0 < low <= high"),
        ("data.augment.scale=[0.9]", r"data\.augment\.scale must be \[low, high\]"),
        ("data.augment.erase_px=[2,9]", r"data\.augment\.erase_px .* <= 8 \(the image size\), got \[2, 9\]"),
        ("data.augment.flip_p=0.5", r"data\.augment\.flip_p: not a strength of dataset 'digits'"),
        ("data.augment.rotation_deg=inf", r"data\.augment\.rotation_deg must be a finite number"),
    ],
)
def test_bad_augmentation_strengths_are_refused_with_one_line(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, [override])
    assert "\n" not in str(error.value)


def test_colour_strengths_are_checked_and_digits_ones_refused_for_colour_data(tmp_path):
    base = ["data.name=cifar10", f"data.root={tmp_path}"]
    with pytest.raises(ConfigError, match=r"data\.augment\.rotation_deg: not a strength of dataset 'cifar10'"):
        load_config(None, [*base, "data.augment.rotation_deg=10"])
    with pytest.raises(ConfigError, match=r"data\.augment\.crop_scale must be \[low, high\] with 0 < low <= high <= 1"):
        load_config(None, [*base, "data.augment.crop_scale=[0.5,1.5]"])
    with pytest.raises(ConfigError, match=r"data\.augment\.jitter must be"):
        load_config(None, [*base, "data.augment.jitter=[0.4,0.4,0.2,0.7]"])
    cfg = load_config(None, [*base, "data.augment.crop_scale=[0.3,1.0]", "data.augment.flip_p=0"])
    splits = Splits(None, None, None, 10, 3, 32)
    augmenter = build_augmenter(cfg.data, splits, 0, 0, "cpu")
    assert augmenter.strengths.crop_scale == (0.3, 1.0) and augmenter.strengths.flip_p == 0.0
