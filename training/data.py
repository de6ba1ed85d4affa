"""Datasets, two-view augmentation presets, and a resumable, rank-aware batch order.

Design notes: docs/training.md, "Design notes: data".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from .augment import BatchAugmenter
from .config import augment_strengths
from .image_cache import NotCacheable, cached_image_folder
from .image_folder import BadImage, DatasetError, image_folder, read_image

IMAGE_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class DatasetNotFound(FileNotFoundError):
    """A dataset's files are missing under data.root."""


@dataclass
class Splits:
    ssl_train: Dataset  # images the SSL loss trains on (labels may be -1)
    labeled_train: Dataset  # labelled images for the probes and kNN
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    val: Dataset | None = None  # held out of labeled_train (and of ssl_train where they coincide)


class TensorImages(Dataset):
    """Images held in memory as a tensor N×C×H×W: floats in [0, 1], or uint8 (a decoded image
    folder, memory-mapped from the image cache)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str] | None = None) -> None:
        self.images, self.labels = images, labels
        self.classes = classes if classes is not None else [str(c) for c in range(int(labels.max()) + 1)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def _digits(cfg) -> Splits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=cfg.test_fraction,
        stratify=labels.numpy(),
        random_state=cfg.split_seed,
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    train = TensorImages(images[train_idx], labels[train_idx])
    test = TensorImages(images[test_idx], labels[test_idx])
    return Splits(train, train, test, 10, 1, 8)


def _synthetic(cfg) -> Splits:
    g = torch.Generator().manual_seed(cfg.split_seed)
    k, size, n = cfg.synthetic_classes, cfg.synthetic_size, cfg.synthetic_samples
    prototypes = torch.rand(k, 1, size, size, generator=g)
    labels = torch.arange(n) % k
    images = (prototypes[labels] + 0.15 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1)
    cut = int(n * (1 - cfg.test_fraction))
    train = TensorImages(images[:cut], labels[:cut])
    return Splits(train, train, TensorImages(images[cut:], labels[cut:]), k, 1, size)


def _missing(name: str, expected: Path, how: str) -> DatasetNotFound:
    return DatasetNotFound(f"{name} not found: expected {expected}. {how}")


def _torchvision(cfg) -> Splits:
    from torchvision import datasets

    root = Path(cfg.root)
    if cfg.name in ("cifar10", "cifar100") and (root / "train").is_dir():
        splits = _imagefolder(cfg)
        expected = 10 if cfg.name == "cifar10" else 100
        if splits.num_classes != expected:
            raise DatasetError(f"{root / 'train'} holds {splits.num_classes} class folders; {cfg.name} has {expected}")
        return splits
    if cfg.name in ("cifar10", "cifar100"):
        cls = datasets.CIFAR10 if cfg.name == "cifar10" else datasets.CIFAR100
        folder = root / ("cifar-10-batches-py" if cfg.name == "cifar10" else "cifar-100-python")
        try:
            train = cls(str(root), train=True, download=cfg.download)
            test = cls(str(root), train=False, download=cfg.download)
        except RuntimeError:
            raise _missing(
                cfg.name,
                folder,
                "Put the extracted 'python version' archive from the CIFAR site there, or set data.download=true. "
                "A folder of JPEGs (train/<class>/*.jpg, test/<class>/*.jpg) loads with data.name=imagefolder.",
            ) from None
        return Splits(train, train, test, len(train.classes), 3, 32)
    try:
        ssl = datasets.STL10(str(root), split="train+unlabeled", download=cfg.download)
        train = datasets.STL10(str(root), split="train", download=cfg.download)
        test = datasets.STL10(str(root), split="test", download=cfg.download)
    except RuntimeError:
        raise _missing(
            "stl10",
            root / "stl10_binary",
            "Extract stl10_binary.tar.gz from the STL-10 site there, or set data.download=true.",
        ) from None
    return Splits(ssl, train, test, 10, 3, 96)


def _imagefolder(cfg) -> Splits:

    root = Path(cfg.root)
    train_dir = root / "train"
    test_dir = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise _missing(
            "imagefolder",
            root / "{train,val}/<class>/<image>",
            f"Found: {sorted(p.name for p in root.iterdir()) if root.is_dir() else 'no such folder'}. "
            "Lay the images out as train/<class>/* and val/<class>/* (or test/<class>/*).",
        )
    if cfg.image_cache:
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir is not None else None
        try:
            cached = [cached_image_folder(d, cache_dir, cfg.skip_bad_images) for d in (train_dir, test_dir)]
        except NotCacheable as why:
            print(f"adadim: {root} takes the per-image path, decoded every epoch ({why})", file=sys.stderr)
        else:
            train_images, test_images = (TensorImages(c.images, c.labels, c.classes) for c in cached)
            if train_images.classes != test_images.classes:
                raise DatasetError(f"{train_dir} and {test_dir} hold different classes")
            size, channels = cached[0].images.shape[-1], cached[0].images.shape[1]
            if cached[1].images.shape[1:] != cached[0].images.shape[1:]:
                raise DatasetError(f"{train_dir} and {test_dir} hold images of different sizes")
            return Splits(train_images, train_images, test_images, len(train_images.classes), channels, size)
    train, test = image_folder(train_dir, cfg.skip_bad_images), image_folder(test_dir, cfg.skip_bad_images)
    if train.classes != test.classes:
        raise DatasetError(f"{train_dir} and {test_dir} hold different classes")
    size = min(read_image(train.samples[0][0]).size)
    return Splits(train, train, test, len(train.classes), 3, 224 if size >= 128 else size)


def _limit_per_class(dataset: Dataset, limit: int) -> Dataset:
    labels = _labels(dataset)
    kept: list[int] = []
    counts: dict[int, int] = {}
    for i, label in enumerate(labels):
        if counts.get(label, 0) < limit:
            kept.append(i)
            counts[label] = counts.get(label, 0) + 1
    return torch.utils.data.Subset(dataset, kept)


def _labels(dataset: Dataset) -> list[int]:
    if isinstance(dataset, torch.utils.data.Subset):
        parent = _labels(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    for attr in ("targets", "labels"):
        if hasattr(dataset, attr):
            return [int(v) for v in getattr(dataset, attr)]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]  # map-style datasets are sized


def _hold_out_validation(splits: Splits, fraction: float, seed: int) -> Splits:
    """Stratified validation split of the labelled training images (seeded by data.val_seed,
    else data.split_seed). Where the SSL set is the labelled set, the validation images leave it
    too."""
    from sklearn.model_selection import train_test_split

    labels = _labels(splits.labeled_train)
    indices = list(range(len(labels)))
    try:
        train_idx, val_idx = train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError:  # too few images per class to stratify
        train_idx, val_idx = train_test_split(indices, test_size=fraction, random_state=seed)
    train = torch.utils.data.Subset(splits.labeled_train, sorted(train_idx))
    val = torch.utils.data.Subset(splits.labeled_train, sorted(val_idx))
    ssl = train if splits.ssl_train is splits.labeled_train else splits.ssl_train
    return replace(splits, ssl_train=ssl, labeled_train=train, val=val)


def load_splits(cfg) -> Splits:
    """The dataset named by cfg (the ``data`` section), with clear errors for missing files."""
    if cfg.name == "digits":
        splits = _digits(cfg)
    elif cfg.name == "synthetic":
        splits = _synthetic(cfg)
    elif cfg.name == "imagefolder":
        splits = _imagefolder(cfg)
    else:
        splits = _torchvision(cfg)
    if cfg.per_class_limit is not None:
        limited = _limit_per_class(splits.labeled_train, cfg.per_class_limit)
        ssl = limited if splits.ssl_train is splits.labeled_train else splits.ssl_train
        splits = replace(splits, ssl_train=ssl, labeled_train=limited)
    if cfg.val_fraction > 0:
        val_seed = cfg.split_seed if cfg.val_seed is None else cfg.val_seed
        splits = _hold_out_validation(splits, cfg.val_fraction, val_seed)
    return splits


# ---- transforms -------------------------------------------------------------------------


def _to_float_image() -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def two_view_transform(name: str, image_size: int) -> v2.Compose:
    """The SSL augmentation preset of a dataset; applied twice per sample."""
    if name in ("digits", "synthetic"):
        # No flips: a flip changes a digit's meaning. One affine map gives the small crop
        # (zoom 1-1.3x), shift (±10%) and rotation (±10°); then pixel noise.
        return v2.Compose(
            [
                v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(1.0, 1.3)),
                v2.GaussianNoise(sigma=0.05, clip=True),
            ]
        )
    mean, std = IMAGE_STATS[name]
    crop_scale = (0.2, 1.0) if name in ("cifar10", "cifar100") else (0.08, 1.0)
    steps = [
        *_to_float_image(),
        v2.RandomResizedCrop(image_size, scale=crop_scale, antialias=True),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if image_size >= 64:  # blur and solarize: the ImageNet-scale recipe
        steps += [
            v2.RandomApply([v2.GaussianBlur(23, sigma=(0.1, 2.0))], p=0.5),
            v2.RandomSolarize(0.5, p=0.1),
        ]
    steps += [v2.RandomHorizontalFlip(), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def eval_transform(name: str, image_size: int) -> v2.Compose | None:
    if name in ("digits", "synthetic"):
        return None
    mean, std = IMAGE_STATS[name]
    resize = (
        [v2.Resize(int(image_size * 256 / 224), antialias=True), v2.CenterCrop(image_size)] if image_size >= 128 else []
    )
    return v2.Compose([*_to_float_image(), *resize, v2.Normalize(mean, std)])


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 10_000_019 + index & 0x7FFF_FFFF_FFFF_FFFF


class TwoViews(Dataset):
    """Two augmented views of each sample, drawn under an RNG seeded by (seed, epoch, index)."""

    def __init__(self, base: Dataset, transform: v2.Compose, seed: int) -> None:
        self.base, self.transform, self.seed, self.epoch = base, transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]  # map-style datasets are sized

    def __getitem__(self, i: int):
        image, label = self.base[i]
        # v2 transforms draw from the default CPU generator: seed it for this sample and put
        # its state back (cheaper than fork_rng + manual_seed, which also touch CUDA).
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(_sample_seed(self.seed, self.epoch, i))
        try:
            return self.transform(image), self.transform(image), label
        finally:
            generator.set_state(state)


class Transformed(Dataset):
    def __init__(self, base: Dataset, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]  # map-style datasets are sized

    def __getitem__(self, i: int):
        image, label = self.base[i]
        return (self.transform(image) if self.transform is not None else image), label


class GlobalBatchSampler(Sampler[list[int]]):
    """Batches of one epoch's seeded permutation. Global batch b is perm[b·G:(b+1)·G] for the
    global batch size G; rank r takes its r-th slice of size G / world. The last partial batch
    is dropped. ``start_batch`` skips the batches a resumed run already trained on."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if global_batch % world:
            raise ValueError(f"data.batch_size {global_batch} is not divisible by the {world} ranks")
        if n < global_batch:
            raise ValueError(f"the training set has {n} samples, fewer than one batch of {global_batch}")
        self.n, self.global_batch, self.seed, self.rank, self.world = n, global_batch, seed, rank, world
        self.epoch, self.start_batch = 0, 0
        self.batches_per_epoch = n // global_batch  # the last partial batch is dropped

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=generator)
        local = self.global_batch // self.world
        for b in range(self.start_batch, self.batches_per_epoch):
            start = b * self.global_batch + self.rank * local
            yield order[start : start + local].tolist()


class BatchedImages(Dataset):
    """Images held in memory (float in [0, 1] or uint8, N×C×H×W), fetched a whole batch at a
    time: the DataLoader calls ``__getitems__`` with a batch's indices, and `train_loader`
    passes the resulting ``(images, labels)`` through unchanged."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        self.images, self.labels = images, labels
        self.rows = torch.arange(len(labels)) if rows is None else rows  # dataset position -> tensor row

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = int(self.rows[i])
        return self.images[row], int(self.labels[row])

    def __getitems__(self, indices: list[int]):
        rows = self.rows[torch.as_tensor(indices)]
        return self.images[rows].contiguous(), self.labels[rows]


def in_memory_images(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(images N×C×H×W, labels, rows) of a dataset whose images sit in one array, else None."""
    from torchvision import datasets

    if isinstance(dataset, torch.utils.data.Subset):
        parent = in_memory_images(dataset.dataset)
        if parent is None:
            return None
        images, labels, rows = parent
        return images, labels, rows[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorImages):
        images, labels = dataset.images, torch.as_tensor(dataset.labels)
    elif isinstance(dataset, datasets.CIFAR10) and dataset.transform is None:  # CIFAR100 is a subclass
        images, labels = torch.from_numpy(dataset.data).permute(0, 3, 1, 2), torch.as_tensor(dataset.targets)
    elif isinstance(dataset, datasets.STL10) and dataset.transform is None:
        images, labels = torch.from_numpy(dataset.data), torch.as_tensor(dataset.labels, dtype=torch.long)
    else:
        return None
    return images, labels, torch.arange(len(labels))


def device_input_transform(image_size: int) -> v2.Compose:
    """Per-image decoding for device augmentation of data not held in memory: a uint8 tensor,
    resized deterministically to image_size × image_size so that batches stack."""
    return v2.Compose(
        [v2.ToImage(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), v2.ToPureTensor()]
    )


def training_dataset(splits: Splits, cfg, seed: int) -> Dataset:
    """The SSL training set as the loader serves it (``cfg`` is the ``data`` section): with
    ``augment_on=device`` items are ``(image, label)`` and batches ``(x, labels)``, un-augmented;
    with ``loader`` items are ``(view1, view2, label)`` (`TwoViews`)."""
    if cfg.augment_on == "loader":
        return TwoViews(splits.ssl_train, two_view_transform(cfg.name, splits.image_size), seed)
    memory = in_memory_images(splits.ssl_train)
    if memory is not None:
        return BatchedImages(*memory)
    return Transformed(splits.ssl_train, device_input_transform(splits.image_size))


def augmenter_preset(name: str, image_size: int) -> tuple[str, dict]:
    """The `BatchAugmenter` preset of a dataset and its overrides, matching `two_view_transform`:
    crop area from 0.2 on CIFAR and 0.08 elsewhere, blur and solarize from 64 px up."""
    if name in ("digits", "synthetic"):
        return "digits", {}
    crop_scale = (0.2, 1.0) if name in ("cifar10", "cifar100") else (0.08, 1.0)
    return ("imagenet" if image_size >= 64 else "cifar"), {"crop_scale": crop_scale}


def build_augmenter(cfg, splits: Splits, seed: int, rank: int, device, **strengths) -> BatchAugmenter | None:
    """The on-device two-view augmenter for the ``data`` section ``cfg`` (None when
    ``augment_on=loader``). Strengths, each over the one before: the preset's, the dataset's
    (`augmenter_preset`), those set in ``cfg.augment``, then ``strengths`` (see
    `adadim.training.augment`)."""
    if cfg.augment_on == "loader":
        return None
    preset, defaults = augmenter_preset(cfg.name, splits.image_size)
    mean, std = IMAGE_STATS.get(cfg.name, (None, None))
    augment = getattr(cfg, "augment", None)
    configured = augment_strengths(augment) if augment is not None else {}
    chosen = {**defaults, **configured, **strengths}
    return BatchAugmenter(preset, splits.image_size, seed, rank, device, mean, std, **chosen)


def _keep_batch(batch):
    return batch


def train_loader(dataset: Dataset, sampler: GlobalBatchSampler, num_workers: int) -> DataLoader:
    """Batches of ``sampler`` over a `training_dataset`: ``(x, labels)`` in device mode,
    ``(x1, x2, labels)`` for `TwoViews`."""
    collate = _keep_batch if isinstance(dataset, BatchedImages) else None  # already a stacked batch
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
    )


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


class NormalizedBatches(BatchedImages):
    """In-memory images served a batch at a time as the evaluation transform would give them:
    uint8 scaled to [0, 1], then normalized by the dataset's mean and std (when it has them)."""

    def __init__(self, images, labels, rows, mean: tuple | None, std: tuple | None) -> None:
        super().__init__(images, labels, rows)
        self.mean = None if mean is None else torch.tensor(mean).reshape(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std).reshape(1, -1, 1, 1)

    def __getitems__(self, indices: list[int]):
        x, labels = super().__getitems__(indices)
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x, labels


def evaluation_loaders(splits: Splits, name: str, num_workers: int, batch_size: int = 512) -> dict[str, DataLoader]:
    """Loaders over the labelled train, test and (when held out) validation images, with the
    dataset's evaluation transform: whole batches at once for images held in memory at their
    training size, else image by image."""
    transform = eval_transform(name, splits.image_size)
    named = {"train": splits.labeled_train, "test": splits.test, "val": splits.val}
    loaders = {}
    for split, dataset in named.items():
        if dataset is None:
            continue
        memory = in_memory_images(dataset)
        if memory is not None and splits.image_size < 128:  # no resize in the evaluation transform
            mean, std = IMAGE_STATS.get(name, (None, None)) if transform is not None else (None, None)
            batched = NormalizedBatches(*memory, mean, std)
            loaders[split] = DataLoader(batched, batch_size=batch_size, num_workers=num_workers, collate_fn=_keep_batch)
        else:
            loaders[split] = eval_loader(Transformed(dataset, transform), batch_size, num_workers)
    return loaders


__all__ = [
    "BadImage",
    "BatchedImages",
    "DatasetError",
    "DatasetNotFound",
    "GlobalBatchSampler",
    "NormalizedBatches",
    "Splits",
    "Transformed",
    "TwoViews",
    "augmenter_preset",
    "build_augmenter",
    "device_input_transform",
    "eval_transform",
    "in_memory_images",
    "load_splits",
    "train_loader",
    "training_dataset",
    "two_view_transform",
]
