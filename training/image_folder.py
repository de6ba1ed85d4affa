"""Image folders (``data.name=imagefolder``) whose bad files fail in one line naming the file.

torchvision's `ImageFolder` reports an empty class folder, a truncated JPEG or a file that is
not an image with a traceback, and the decoding errors without the file's name. Here every
image is decoded through `read_image`, which names the file; with ``data.skip_bad_images=true``
every image is decoded once before training and the unreadable ones are left out, with a count.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image


class DatasetError(ValueError):
    """A dataset's files are there but cannot be used (an unreadable image, mismatched classes)."""


class BadImage(DatasetError):
    """One image file that cannot be decoded; ``reason`` says why in a few words."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_image(path: str | Path) -> Image.Image:
    """The image at ``path`` as RGB, fully decoded; `BadImage` names the file when it is
    truncated, not an image, or unreadable. (The `ImageFolder` loader: a module-level function,
    so loader workers can pickle it.)"""
    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")  # decodes every pixel: a truncated file fails here
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        reason = _reason(error)
        raise BadImage(
            f"image {path} cannot be read ({reason}); replace or remove it, "
            "or set data.skip_bad_images=true to leave unreadable images out",
            reason,
        ) from None


def _readable(path: str) -> str | None:
    """None when the image decodes, else why not."""
    try:
        read_image(path)
    except BadImage as error:
        return error.reason
    return None


def note_skipped(folder: Path, skipped: list, total: int) -> None:
    """Say on stderr how many of ``total`` images in ``folder`` were left out as unreadable
    (``skipped``: (path, reason) pairs), naming the first."""
    if skipped:
        path, why = skipped[0]
        print(
            f"adadim: skipped {len(skipped)} unreadable image(s) of {total} in {folder} "
            f"(data.skip_bad_images=true); the first: {path} ({why})",
            file=sys.stderr,
        )


def image_folder(folder: Path, skip_bad_images: bool = False):
    """``folder/<class>/<image>`` as a torchvision `ImageFolder` decoding through `read_image`.
    An empty class folder is refused (`DatasetError`); with ``skip_bad_images`` the images
    that do not decode are left out and counted on stderr."""
    from torchvision import datasets

    try:
        dataset = datasets.ImageFolder(str(folder), loader=read_image)
    except FileNotFoundError as error:  # a class folder without a single image file
        raise DatasetError(f"image folder {folder}: {_reason(error)}") from None
    if skip_bad_images:
        bad = [(path, why) for path, _ in dataset.samples if (why := _readable(path)) is not None]
        if bad:
            skipped = {path for path, _ in bad}
            total = len(dataset.samples)
            dataset.samples = [s for s in dataset.samples if s[0] not in skipped]
            dataset.imgs = dataset.samples
            dataset.targets = [label for _, label in dataset.samples]
            note_skipped(folder, bad, total)
        refuse_empty_classes(folder, dataset.classes, dataset.targets)
    return dataset


def refuse_empty_classes(folder: Path, classes: list[str], labels) -> None:
    """`DatasetError` naming every class of ``classes`` that no label in ``labels`` points to:
    after unreadable images were skipped, a class with none left cannot be learned or scored."""
    kept = {int(label) for label in labels}
    empty = [name for i, name in enumerate(classes) if i not in kept]
    if empty:
        raise DatasetError(f"image folder {folder}: no readable image left in class {', '.join(empty)}")


def error_line(error: Exception) -> str:
    """An error's message as one line. A loader worker's error reaches the trainer re-raised
    with the worker's traceback in its message; its last line is the original message."""
    last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    return last[len(prefix) :] if last.startswith(prefix) else last
