"""A folder of small images decoded once into a uint8 tensor on disk, memory-mapped by later runs.

Decoding tens of thousands of JPEGs one at a time, every epoch, is what made image folders slow
on a CPU. Here the first run decodes the folder once (through `read_image`, so a bad file is
named) into ``images.npy`` (N×C×H×W, uint8) and ``labels.npy`` under a directory named by a
digest of the source's content: every file's relative path, class and bytes. A changed,
added or removed image gives another digest, so a stale cache is never found. An entry is built
in a temporary directory and renamed into place, under a file lock, and holds a digest of its
arrays: a truncated or damaged entry fails its check on load and is rebuilt with a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from .image_folder import BadImage, image_folder, note_skipped, read_image, refuse_empty_classes

CACHE_VERSION = 1
MAX_CACHED_SIZE = 127  # larger images take the per-image path (resized to 224 for the ImageNet recipe)


class NotCacheable(Exception):
    """The folder's images do not share one small size; the per-image path serves it."""


@dataclass
class CachedFolder:
    """A decoded image folder: ``images`` N×C×H×W uint8 (memory-mapped), ``labels`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    path: Path  # the cache entry's directory
    built: bool  # decoded by this call (else loaded from the cache)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/adadim/images``, else ``~/.cache/adadim/images``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "adadim" / "images"


def source_digest(folder: Path, samples: list[tuple[str, int]], classes: list[str], skip_bad_images: bool) -> str:
    """A digest of the folder's content: class names, then each image's relative path, label
    and bytes, in the listing's order; and the skip setting, which changes what is kept."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({"version": CACHE_VERSION, "classes": classes, "skip": skip_bad_images}).encode())
    for path, label in samples:
        digest.update(f"\0{Path(path).relative_to(folder).as_posix()}\0{label}\0".encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _arrays_digest(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _decode(samples: list[tuple[str, int]], skip_bad_images: bool) -> tuple[np.ndarray, np.ndarray, list]:
    """(images N×C×H×W uint8, labels, [(path, reason) skipped]). Raises `NotCacheable` on the
    first image of another size than the first, or of a size the cache does not take."""
    images: np.ndarray | None = None
    labels = np.empty(len(samples), dtype=np.int64)
    skipped: list[tuple[str, str]] = []
    kept = 0
    for path, label in samples:
        try:
            pixels = np.asarray(read_image(path))
        except BadImage as error:
            if not skip_bad_images:
                raise
            skipped.append((path, error.reason))
            continue
        if images is None:
            height, width, channels = pixels.shape
            if height != width or height > MAX_CACHED_SIZE:
                raise NotCacheable(
                    f"{path} is {width}×{height}; the cache takes square images up to {MAX_CACHED_SIZE} px"
                )
            images = np.empty((len(samples), channels, height, width), dtype=np.uint8)
        elif pixels.shape != (images.shape[2], images.shape[3], images.shape[1]):
            raise NotCacheable(f"{path} is {pixels.shape[1]}×{pixels.shape[0]}, unlike the folder's first image")
        images[kept] = pixels.transpose(2, 0, 1)
        labels[kept] = label
        kept += 1
    if images is None:
        raise NotCacheable("no image decodes")
    return images[:kept], labels[:kept], skipped


def _write(entry: Path, images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Write the entry into a temporary sibling and rename it into place (the caller holds the lock)."""
    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "images.npy", images)
    np.save(partial / "labels.npy", labels)
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(partial, entry)


def _load(entry: Path, key: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The entry's arrays, checked against its metadata and digest; ValueError says why not."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy", mmap_mode="c")  # copy-on-write: a writable, shared mapping
        labels = np.load(entry / "labels.npy")
    except (OSError, ValueError, EOFError) as error:  # missing, truncated or not an array
        raise ValueError(" ".join(str(error).split()) or type(error).__name__) from None
    if meta.get("version") != CACHE_VERSION or meta.get("source_digest") != key:
        raise ValueError("its metadata names another source or cache version")
    if list(images.shape) != meta.get("shape") or images.dtype != np.uint8 or len(labels) != len(images):
        raise ValueError(f"its arrays have shape {list(images.shape)}, not {meta.get('shape')}")
    if _arrays_digest(images, labels) != meta.get("arrays_digest"):
        raise ValueError("its arrays do not match their digest")
    return torch.from_numpy(images), torch.from_numpy(labels), meta


def cached_image_folder(folder: Path, cache_dir: Path | None = None, skip_bad_images: bool = False) -> CachedFolder:
    """``folder/<class>/<image>`` as uint8 tensors, decoded once and cached under ``cache_dir``
    (default `default_cache_dir`). Images are listed and labelled as torchvision's `ImageFolder`
    does. Raises `NotCacheable` for images of mixed or large sizes, `BadImage` naming an
    unreadable file (unless ``skip_bad_images``), `DatasetError` for an empty class."""
    listing = image_folder(folder)  # lists and labels; decodes nothing
    samples = [(str(path), int(label)) for path, label in listing.samples]
    key = source_digest(folder, samples, list(listing.classes), skip_bad_images)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / key
    with FileLock(str(root / f"{key}.lock")):
        if entry.exists():
            try:
                images, labels, meta = _load(entry, key)
            except ValueError as why:
                print(f"adadim: image cache {entry} is damaged ({why}); decoding {folder} again", file=sys.stderr)
            else:
                note_skipped(folder, [tuple(s) for s in meta["skipped"]], len(samples))
                return CachedFolder(images, labels, list(meta["classes"]), entry, built=False)
        decoded, label_array, skipped = _decode(samples, skip_bad_images)
        note_skipped(folder, skipped, len(samples))
        refuse_empty_classes(folder, listing.classes, label_array.tolist())
        meta = {
            "version": CACHE_VERSION,
            "source": str(Path(folder).resolve()),
            "source_digest": key,
            "classes": list(listing.classes),
            "shape": list(decoded.shape),
            "skipped": skipped,
            "arrays_digest": _arrays_digest(decoded, label_array),
        }
        _write(entry, decoded, label_array, meta)
        images, labels, _ = _load(entry, key)
    return CachedFolder(images, labels, list(listing.classes), entry, built=True)


__all__ = ["CachedFolder", "NotCacheable", "cached_image_folder", "default_cache_dir", "source_digest"]
