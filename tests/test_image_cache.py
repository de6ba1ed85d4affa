"""The image cache: the same tensors as a fresh decode, and a stale, truncated or damaged
entry rebuilt, never trusted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from adadim.training.config import load_config
from adadim.training.data import Transformed, eval_transform, evaluation_loaders, load_splits
from adadim.training.image_cache import NotCacheable, cached_image_folder
from adadim.training.image_folder import BadImage, DatasetError, image_folder, read_image
from PIL import Image
from trainer_helpers import CIFAR_JPEG, cifar_jpeg_folder


def _folder(root, sizes=None, classes=("cat", "dog"), per_class=3, fmt="PNG"):
    """root/<class>/<i>.png of seeded random pixels; ``sizes`` maps a file index to another size."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            size = (sizes or {}).get(i, 8)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.{fmt.lower()}", fmt)
    return root


def _fresh_decode(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    images = torch.stack([torch.from_numpy(np.array(read_image(p))).permute(2, 0, 1) for p in files])
    labels = torch.tensor([sorted({p.parent.name for p in files}).index(p.parent.name) for p in files])
    return images, labels


def test_cache_holds_the_same_tensors_as_a_fresh_decode_and_is_reused(tmp_path):
    root = _folder(tmp_path / "train")
    first = cached_image_folder(root, tmp_path / "cache")
    images, labels = _fresh_decode(root)
    assert first.built and first.images.dtype == torch.uint8 and first.images.shape == (6, 3, 8, 8)
    assert torch.equal(first.images, images) and torch.equal(first.labels, labels)
    assert first.classes == ["cat", "dog"]
    second = cached_image_folder(root, tmp_path / "cache")
    assert not second.built and torch.equal(second.images, images) and torch.equal(second.labels, labels)


def test_a_changed_image_gives_a_new_entry_with_the_new_pixels(tmp_path):
    root = _folder(tmp_path / "train")
    before = cached_image_folder(root, tmp_path / "cache")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "dog" / "1.png")
    after = cached_image_folder(root, tmp_path / "cache")
    assert after.built and after.path != before.path
    assert torch.equal(after.images, _fresh_decode(root)[0]) and int(after.images[4].sum()) == 0


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "delete meta"])
def test_a_damaged_entry_is_rebuilt_with_a_note(tmp_path, capsys, damage):
    root = _folder(tmp_path / "train")
    entry = cached_image_folder(root, tmp_path / "cache").path
    array = entry / "images.npy"
    if damage == "truncate":
        array.write_bytes(array.read_bytes()[:-50])
    elif damage == "flip a byte":
        data = bytearray(array.read_bytes())
        data[-1] ^= 0xFF
        array.write_bytes(bytes(data))
    else:
        (entry / "meta.json").unlink()
    rebuilt = cached_image_folder(root, tmp_path / "cache")
    assert rebuilt.built and "is damaged" in capsys.readouterr().err
    assert torch.equal(rebuilt.images, _fresh_decode(root)[0])
    assert not list((tmp_path / "cache").glob("*.partial-*"))


def test_mixed_sizes_are_not_cached_and_take_the_per_image_path(tmp_path, capsys):
    _folder(tmp_path / "data" / "train", sizes={2: 12})
    _folder(tmp_path / "data" / "val")
    with pytest.raises(NotCacheable, match="unlike the folder's first image"):
        cached_image_folder(tmp_path / "data" / "train", tmp_path / "cache")
    cfg = load_config(None, ["data.name=imagefolder", f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path}"])
    splits = load_splits(cfg.data)
    assert "takes the per-image path" in capsys.readouterr().err
    assert type(splits.ssl_train.dataset).__name__ == "ImageFolder"  # a Subset (validation held out) of it
    assert splits.image_size == 8


def test_bad_image_is_named_or_skipped_with_a_count_also_on_a_cache_hit(tmp_path, capsys):
    root = _folder(tmp_path / "train")
    (root / "cat" / "9.png").write_bytes(b"not an image")
    with pytest.raises(BadImage, match=r"9\.png cannot be read"):
        cached_image_folder(root, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/meta.json"))  # nothing half-written
    for built in (True, False):
        cached = cached_image_folder(root, tmp_path / "cache", skip_bad_images=True)
        assert cached.built is built and len(cached.images) == 6
        assert "skipped 1 unreadable image(s) of 7" in capsys.readouterr().err


def test_a_class_with_no_readable_image_left_is_refused_on_both_paths(tmp_path):
    root = _folder(tmp_path / "train", classes=("ant", "cat", "dog"), per_class=2)
    for name in ("0.png", "1.png"):
        (root / "ant" / name).write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"no readable image left in class ant$"):
        cached_image_folder(root, tmp_path / "cache", skip_bad_images=True)
    with pytest.raises(DatasetError, match=r"no readable image left in class ant$"):
        image_folder(root, skip_bad_images=True)
    assert not any((tmp_path / "cache").glob("*/meta.json"))  # no entry for a refused folder


def test_cached_folder_serves_training_and_batched_evaluation_like_the_per_image_path(tmp_path):
    _folder(tmp_path / "data" / "train", per_class=5)
    _folder(tmp_path / "data" / "val", per_class=2)
    base = ["data.name=imagefolder", f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path / 'c'}"]
    cached = load_splits(load_config(None, [*base, "data.val_fraction=0.2"]).data)
    per_image = load_splits(load_config(None, [*base, "data.val_fraction=0.2", "data.image_cache=false"]).data)
    assert len(cached.ssl_train) == len(per_image.ssl_train) == 8 and cached.image_size == per_image.image_size == 8
    for split in ("labeled_train", "test", "val"):
        a, b = getattr(cached, split), getattr(per_image, split)
        for i in range(len(a)):
            assert torch.equal(torch.as_tensor(a[i][0]), torch.as_tensor(np.array(b[i][0])).permute(2, 0, 1))
            assert a[i][1] == b[i][1]
    batched = evaluation_loaders(cached, "imagefolder", 0, batch_size=3)["test"]
    x, y = torch.cat([b[0] for b in batched]), torch.cat([b[1] for b in batched])
    transform = eval_transform("imagefolder", 8)
    one_by_one = Transformed(per_image.test, transform)
    want = torch.stack([one_by_one[i][0] for i in range(len(one_by_one))])
    assert torch.allclose(x, want, atol=1e-6) and y.tolist() == [one_by_one[i][1] for i in range(len(one_by_one))]


def test_cifar10_as_class_folders_checks_the_number_of_classes(tmp_path):
    from adadim.training.image_folder import DatasetError

    _folder(tmp_path / "data" / "train")
    _folder(tmp_path / "data" / "test")
    cfg = load_config(None, ["data.name=cifar10", f"data.root={tmp_path / 'data'}", f"data.cache_dir={tmp_path}"])
    with pytest.raises(DatasetError, match="holds 2 class folders; cifar10 has 10"):
        load_splits(cfg.data)


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"no CIFAR-10 JPEG archive at {CIFAR_JPEG}")
def test_real_cifar10_jpegs_cache_equals_a_fresh_decode(tmp_path):
    root = cifar_jpeg_folder(tmp_path / "cifar10-jpeg", 6, 3)
    cfg = load_config(
        "cifar10-cpu", [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0"]
    )
    # cifar_jpeg_folder writes train/ and val/; cifar10 as class folders reads train/ and test/
    (root / "val").rename(root / "test")
    splits = load_splits(cfg.data)
    assert (len(splits.ssl_train), len(splits.test), splits.num_classes, splits.image_size) == (60, 30, 10, 32)
    images, labels = _fresh_decode(root / "train")
    assert torch.equal(splits.ssl_train.images, images) and torch.equal(splits.ssl_train.labels, labels)


@pytest.mark.slow
def test_sigkill_then_resume_on_a_cached_image_folder_gives_the_uninterrupted_history(tmp_path):
    """The cached folder's batches and their on-device views are seeded by step: a run killed
    mid-epoch and resumed trains what the straight run trained, bit for bit."""
    from adadim.training.trainer import train
    from trainer_helpers import cli, history, kill_after_rows_then_resume, tiny_overrides, untimed

    data = tmp_path / "data"
    _folder(data / "train", classes=("a", "b", "c", "d"), per_class=64)
    _folder(data / "val", classes=("a", "b", "c", "d"), per_class=4)
    extra = {
        "data.name": "imagefolder",
        "data.root": str(data),
        "data.cache_dir": str(tmp_path / "cache"),
        "optim.epochs": 30,
        "run.checkpoint_every_steps": 7,
        "dynamics.every": 5,
    }
    config = tmp_path / "folder.yaml"  # not the CLI's default digits config, whose augmentation is for digits
    config.write_text("data:\n  name: imagefolder\n")
    args = cli("train", "--config", str(config), *tiny_overrides(tmp_path, "killed", **extra))
    resumed = kill_after_rows_then_resume(args, tmp_path / "killed" / "history.jsonl")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference = train(load_config(str(config), tiny_overrides(tmp_path, "straight", **extra)))
    assert reference["state"] == "finished"
    assert untimed(history(tmp_path / "killed")) == untimed(history(tmp_path / "straight"))


def test_the_cifar10_cpu_network_maps_32px_images_to_192_features_at_a_quarter_of_the_pixels():
    from adadim.training.models import build_backbone

    backbone = build_backbone("cifar_cnn", 3, 24)
    x = torch.randn(2, 3, 32, 32)
    assert backbone(x).shape == (2, 192) and backbone.out_dim == 192
    assert backbone.features[0](x).shape[-2:] == (16, 16)  # the stride-2 stem
    cfg = load_config("cifar10-cpu", ["data.root=."], check_files=False)
    assert (cfg.model.backbone, cfg.model.width, cfg.data.name) == ("cifar_cnn", 24, "cifar10")
