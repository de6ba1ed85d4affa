"""The bad-input catalogue: every way a user was seen to break adadim, and the ones that already
held, one row each.

A row is a `Case`: the command (what follows `adadim`, run in-process through the console
script), the exit code, a fragment of the message, and what must be unchanged on disk. An
expected error is one line at the end of stderr with exit code 2 and no traceback; a tolerated
problem (a bad run beside good ones) exits 0 and says what it skipped. ``{tmp}`` in a command
or path is the case's own folder; ``setup`` builds the input there. To add a case, add a row.

The trainer's run-directory lock is tested in test_run_lock.py and test_trainer.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from adadim.analysis.loading import load_runs
from adadim.cli import main
from adadim.training.checkpoint import save_checkpoint
from adadim.training.config import load_config
from adadim.training.data import load_splits
from adadim.training.models import SSLModel, build_backbone
from adadim.training.run_lock import LOCK_FILE
from analysis_helpers import constant, planted_rows, write_run
from omegaconf import OmegaConf
from trainer_helpers import tiny_overrides

ARGS = "${args_no_hyphens}"
FAST_EVAL = ("eval.final_probe_epochs=2", "eval.lowlabel_epochs=2", "eval.lowlabel_draws=1")


# ---- building inputs -------------------------------------------------------------------------


def write_trained_run(run_dir: Path, overrides: list[str], state: dict | None = None) -> Path:
    """A run directory as the trainer leaves it, as far as evaluation and resume read it: the
    resolved config.yaml and a checkpoint (a real model's weights unless ``state`` is given).
    The config is the one `adadim train` builds: the bundled digits file, then the overrides."""
    cfg = load_config("digits", overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    if state is None:
        splits = load_splits(cfg.data)
        torch.manual_seed(0)
        backbone = build_backbone(cfg.model.backbone, splits.in_channels, cfg.model.width, cfg.model.cifar_stem)
        state = {"model": SSLModel(backbone, list(cfg.model.projector), splits.num_classes).state_dict(), "step": 4}
    save_checkpoint(run_dir / "checkpoints", int(state.get("step", 4)), state, keep=5)
    return run_dir


def tiny(tmp: Path, run_id: str = "r0") -> list[str]:
    return tiny_overrides(tmp / "runs", run_id, **{"optim.epochs": 1})


class Pwn:
    """A pickle that would create a file when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def good_runs(tmp: Path, n: int = 1, **summary) -> Path:
    root = tmp / "runs"
    for k in range(n):
        rows = planted_rows(20, constant(1.0 + k), constant(0.5))
        config = {"method": "adadim", "run": {"seed": k}}
        write_run(root, f"good{k}", rows, {"final/lowlabel_top1": 0.5 + 0.1 * k, **summary}, config)
    return root


def sweep_file(tmp: Path, parameters: dict, name: str = "tiny", **extra) -> Path:
    spec = {
        "name": name,
        "method": "grid",
        "metric": {"name": "final/val_lowlabel_top1", "goal": "maximize"},
        "parameters": parameters,
        "command": ["adadim", "train", ARGS],
        **extra,
    }
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def huge_grid(tmp: Path) -> None:
    keys = ["loss.temperature", "loss.invariance_weight", "loss.variance_weight", "loss.covariance_weight"]
    keys += ["adadim.gamma", "adadim.ema", "optim.weight_decay", "optim.momentum", "optim.probe_lr", "run.seed"]
    sweep_file(tmp, {k: {"values": [0, 1, 2, 3] if k == "run.seed" else [0.1, 0.2, 0.3, 0.4]} for k in keys})


def nan_ratio_runs(tmp: Path) -> None:
    for k in range(4):
        rows = planted_rows(20, constant(1.0 + k), constant(0.5))
        for row in rows:
            row["dynamics/ratio_H_I"] = None  # as the trainer logs it while I_excess <= 0
        write_run(tmp / "runs", f"r{k}", rows, {"final/lowlabel_top1": 0.5 + 0.1 * k}, {"method": "adadim"})


def copied_run(tmp: Path) -> None:
    rows = planted_rows(20, constant(1.0), constant(0.5))
    original = write_run(tmp / "runs", "orig", rows, {"run_id": "orig", "final/lowlabel_top1": 0.6})
    shutil.copytree(original, tmp / "runs" / "orig-copy")


def _hold(folder: str):
    """Another runner holding ``folder``'s lock (a process of its own, as a second terminal)."""

    def setup(tmp: Path):
        sweep_file(tmp, {"method": {"value": "vicreg"}})
        target = Path(folder.replace("{tmp}", str(tmp)))
        code = (
            "import sys; from adadim.training.run_lock import acquire_run_lock; "
            f"lock = acquire_run_lock({str(target)!r}); print('held', flush=True); sys.stdin.read()"
        )
        holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdout.readline().strip() == b"held"
        return holder  # the harness closes its stdin (the holder exits) after the call

    return setup


def image_folder_with(bad: Callable[[Path], object]):
    """A tiny image folder (two classes of four 16x16 JPEGs in train/ and val/), a user config
    file that takes the colour preset, then ``bad`` applied to the folder."""

    def setup(tmp: Path) -> None:
        from PIL import Image

        for split in ("train", "val"):
            for label in ("a", "b"):
                folder = tmp / "ds" / split / label
                folder.mkdir(parents=True)
                for k in range(4):
                    Image.new("RGB", (16, 16), (60 * k, 30, 200 if label == "a" else 10)).save(folder / f"{k}.jpg")
        (tmp / "cfg.yaml").write_text("method: vicreg\n")
        bad(tmp / "ds")

    return setup


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


IMAGES = (
    *("train", "--config", "{tmp}/cfg.yaml", "data.name=imagefolder", "data.root={tmp}/ds", "run.root={tmp}/runs"),
    *("run.id=img", "wandb.mode=disabled", "run.progress=false", "data.batch_size=4", "model.width=4"),
    *("model.projector=[8,8]", "optim.epochs=1", "dynamics.every=0", "eval.every_epochs=0"),
    *("eval.final_probe_epochs=1", "eval.lowlabel_epochs=1", "eval.lowlabel_draws=1", "eval.lowlabel_k=[1]"),
)


def _damaged_cache(ds: Path) -> None:
    """The training images' cache entry under {tmp}/cache, its array cut short."""
    from adadim.training.image_cache import cached_image_folder

    entry = cached_image_folder(ds / "train", ds.parent / "cache").path
    array = entry / "images.npy"
    array.write_bytes(array.read_bytes()[:-100])


def _other_model_checkpoint(run_id: str | None = None, width: int = 4):
    """Run r0 under {tmp}/runs whose newest checkpoint holds another model (``width``), or the
    same model recorded as another run's (``run_id``)."""

    def setup(tmp: Path) -> None:
        run = write_trained_run(tmp / "runs" / "r0", tiny(tmp))
        cfg = load_config("digits", tiny(tmp))
        splits = load_splits(cfg.data)
        backbone = build_backbone(cfg.model.backbone, splits.in_channels, width, cfg.model.cifar_stem)
        model = SSLModel(backbone, list(cfg.model.projector), splits.num_classes)
        # What a resume asks for beside the model; the identity is checked before any of it is read.
        state = {"model": model.state_dict(), "step": 8, "optimizer": {}, "controller": {}, "rng_cpu": torch.zeros(1)}
        if run_id is not None:
            state["run_id"] = run_id
        save_checkpoint(run / "checkpoints", 8, state, keep=5)
        (run / "summary.json").write_text(json.dumps({"state": "interrupted", "run_id": "r0"}))

    return setup


def beside_good_runs(name: str, history: Callable[[Path], object] | None):
    """A good run, and a finished run ``name`` with its config and summary whose history.jsonl
    is what ``history`` makes of its path (None: no history at all)."""

    def setup(tmp: Path) -> None:
        good_runs(tmp)
        run = write_run(tmp / "runs", name, planted_rows(5, constant(1), constant(1)), {"final/lowlabel_top1": 0.5})
        (run / "history.jsonl").unlink()
        if history is not None:
            history(run / "history.jsonl")

    return setup


def nested_runs(tmp: Path) -> None:
    for folder, run_id in (("a/run1", "a-run1"), ("b/run1", "b-run1"), ("a/run2", "run2")):
        rows = planted_rows(20, constant(1.0), constant(0.5))
        write_run(tmp / "runs" / folder.split("/")[0], folder.split("/")[1], rows,
                  {"run_id": run_id, "final/lowlabel_top1": 0.6})  # fmt: skip


def swapped_cache(tmp: Path) -> None:
    """Two runs analysed once (their cache written), then run good0's cache file copied over good1's."""
    root = good_runs(tmp, 2)
    load_runs(root, progress=False)
    shutil.copyfile(root / ".adadim-cache" / "good0.parquet", root / ".adadim-cache" / "good1.parquet")


def checkpoints_gone(tmp: Path) -> None:
    """Run r0 trained to step 10 (checkpoints every 4 steps), its checkpoints then deleted."""
    run = write_trained_run(tmp / "runs" / "r0", tiny(tmp))
    shutil.rmtree(run / "checkpoints")
    rows = [{"trainer/step": s, "train/loss": 1.0} for s in range(11)]
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def bare_target(tmp: Path) -> None:
    """An earlier run's folder holding only its history: whether it finished is unknown."""
    rows = [{"trainer/step": s, "train/loss": 1.0, "dynamics/ratio_H_I": 2.0} for s in range(5)]
    (tmp / "bare").mkdir()
    (tmp / "bare" / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def trial_mode_sweep(tmp: Path) -> None:
    # steer.kp is fine beside method=steer (the first value), not in the vicreg trial
    sweep_file(tmp, {"method": {"values": ["steer", "vicreg"]}, "steer.kp": {"value": 2.0}})


# ---- the catalogue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    message: str
    setup: Callable[[Path], object] = lambda tmp: None
    unchanged: tuple[str, ...] = ("{tmp}",)  # trees that must be byte-identical afterwards
    absent: tuple[str, ...] = ()  # paths that must not exist afterwards
    contains: tuple[tuple[str, str], ...] = ()  # (file, text): the file holds the text afterwards
    read_only: str | None = None  # a folder made unwritable (for root too) during the call
    env: tuple[tuple[str, str], ...] = ()  # environment variables set for the call
    marks: tuple = field(default_factory=tuple)


RUN = "{tmp}/run"
ANALYZE = ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies", "equilibrium")
EVAL_RUN = ("eval", "--run", RUN)


def _run(tmp: Path) -> Path:
    return write_trained_run(tmp / "run", tiny(tmp))


def _replace(path: str, content: bytes | str, also: Callable[[Path], object] = _run):
    def setup(tmp: Path) -> None:
        also(tmp)
        target = Path(path.replace("{tmp}", str(tmp)))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _with_checkpoint(state_of: Callable[[Path], object], step: int = 9, only: bool = False):
    def setup(tmp: Path) -> None:
        run = _run(tmp)
        if only:
            shutil.rmtree(run / "checkpoints")
        (run / "checkpoints").mkdir(exist_ok=True)
        torch.save(state_of(tmp), run / "checkpoints" / f"step-{step:08d}.pt")

    return setup


def _truncate_newest(tmp: Path) -> None:
    run = _run(tmp)
    older = {"model": torch.load(run / "checkpoints" / "step-00000004.pt", weights_only=True)["model"], "step": 8}
    newest = save_checkpoint(run / "checkpoints", 8, older, keep=5)
    newest.write_bytes(newest.read_bytes()[:1000])


def _resume_dir(config: str | None = None, state: dict | None = None):
    """An existing run r0 under {tmp}/runs, as `adadim train <tiny overrides>` would resume it."""

    def setup(tmp: Path) -> None:
        run = write_trained_run(tmp / "runs" / "r0", tiny(tmp), state)
        if config is not None:
            (run / "config.yaml").write_text(config)

    return setup


def _train(*extra: str) -> tuple[str, ...]:
    # The tiny config under {tmp}/runs/r0; filled in per case (tiny() needs the folder).
    return ("train", "@tiny", *extra)


CASES = [
    # -- adadim eval --run: overrides are validated and limited to how the run is scored ------
    Case("eval-negative-epochs", (*EVAL_RUN, "eval.final_probe_epochs=-5", "eval.lowlabel_epochs=5"), 2,
         "eval.final_probe_epochs must be >= 1", _run),
    Case("eval-unknown-key", (*EVAL_RUN, "eval.bogus=1"), 2, "eval.bogus: Key 'bogus' not in", _run),
    Case("eval-training-key", (*EVAL_RUN, "model.width=8"), 2, "model.width cannot be changed for a trained run", _run),
    Case("eval-infinite", (*EVAL_RUN, "eval.knn_temperature=inf"), 2, "eval.knn_temperature must be a finite", _run),
    Case("eval-garbage-config", EVAL_RUN, 2, "config.yaml", _replace(f"{RUN}/config.yaml", b"\x00\xff: [oops\n")),
    Case("eval-config-not-mapping", EVAL_RUN, 2, "holds a list, not a mapping",
         _replace(f"{RUN}/config.yaml", "- a\n")),
    Case("eval-checkpoint-without-model", EVAL_RUN, 2, "is not an adadim checkpoint (no 'model')",
         _with_checkpoint(lambda tmp: {"step": 9, "weights": torch.zeros(2)})),
    Case("eval-crafted-pickle", EVAL_RUN, 2, "has no readable checkpoint",
         _with_checkpoint(lambda tmp: Pwn(tmp / "pwned"), only=True), absent=("{tmp}/pwned",)),
    Case("eval-json-missing-folder", (*EVAL_RUN, "--json", "{tmp}/nowhere/x.json"), 2, "does not exist", _run),
    Case("eval-json-is-folder", (*EVAL_RUN, "--json", "{tmp}"), 2, "is a folder, not a file", _run),
    Case("eval-json-read-only", (*EVAL_RUN, "--json", "{tmp}/ro/x.json"), 2, "not writable",
         lambda tmp: (_run(tmp), (tmp / "ro").mkdir()), read_only="{tmp}/ro"),
    Case("eval-not-a-run", ("eval", "--run", "{tmp}/nowhere"), 2, "is not a run directory"),
    # The newest checkpoint torn by a crash: the one before it is used (this already held).
    Case("eval-truncated-newest-checkpoint", (*EVAL_RUN, *FAST_EVAL, "data.num_workers=0", "run.device=cpu"), 0,
         "skipping unreadable checkpoint", _truncate_newest),
    # -- adadim train: the config ------------------------------------------------------------
    Case("train-infinite-lr", _train("optim.lr=inf"), 2, "optim.lr must be a finite number, got inf",
         absent=("{tmp}/runs",)),
    Case("train-infinite-gamma", _train("adadim.gamma=inf"), 2, "adadim.gamma must be a finite number",
         absent=("{tmp}/runs",)),
    Case("train-infinite-temperature", _train("loss.temperature=inf"), 2, "loss.temperature must be a finite",
         absent=("{tmp}/runs",)),
    Case("train-nan", _train("optim.weight_decay=nan"), 2, "optim.weight_decay must be a finite number, got nan",
         absent=("{tmp}/runs",)),
    Case("train-run-id-dots", _train("run.id=..."), 2, "the value '...' is not valid YAML", absent=("{tmp}/runs",)),
    Case("train-run-id-traversal", _train("run.id=../escape"), 2, "run.id '../escape' must start with a letter",
         absent=("{tmp}/runs", "{tmp}/escape")),
    Case("train-hash-in-value", _train("wandb.group=exp #1"), 2, "quote the value", absent=("{tmp}/runs",)),
    Case("train-unknown-key", _train("bogus.key=1"), 2, "Key 'bogus' not in 'TrainConfig'", absent=("{tmp}/runs",)),
    Case("train-not-key-value", _train("optim.lr"), 2, "is not of the form key=value", absent=("{tmp}/runs",)),
    Case("train-yaml-python-tag", ("train", "--config", "{tmp}/evil.yaml"), 2, "could not determine a constructor",
         _replace("{tmp}/evil.yaml", "method: !!python/object/apply:os.system ['touch pwned']\n", lambda t: None),
         absent=("{tmp}/pwned", "{tmp}/runs")),
    Case("train-config-not-mapping", ("train", "--config", "{tmp}/list.yaml"), 2, "holds a list, not a mapping",
         _replace("{tmp}/list.yaml", "- optim.lr=0.1\n", lambda t: None)),
    Case("train-root-under-a-file", ("train", "@tiny", "run.root={tmp}/a-file/runs"), 2, "run directory",
         _replace("{tmp}/a-file", "x", lambda t: None)),
    Case("train-read-only-root", ("train", "@tiny", "run.root={tmp}/ro/runs"), 2, "run directory",
         lambda tmp: (tmp / "ro").mkdir(), read_only="{tmp}/ro"),
    # -- adadim train: a setting the chosen mode never reads is refused, naming its mode --------
    Case("train-alpha-without-fixed", _train("method=vicreg", "adadim.alpha=0.3"), 2,
         "adadim.alpha is read only with method=fixed, and this config has method=vicreg", absent=("{tmp}/runs",)),
    Case("train-byol-keys-without-byol", _train("method=simclr", "byol.tau_base=0.9"), 2,
         "byol.tau_base is read only with method=byol", absent=("{tmp}/runs",)),
    Case("train-schedule-without-schedule", _train("method=fixed", "adadim.alpha_start=0.1", "adadim.alpha_end=0.9"),
         2, "adadim.alpha_end is read only with method=linear or method=cosine", absent=("{tmp}/runs",)),
    Case("train-steer-keys-without-steer", _train("method=vicreg", "steer.kp=5", "steer.target=run"), 2,
         "steer.kp is read only with method=steer", absent=("{tmp}/runs",)),
    Case("train-target-run-with-constant-target", _train("method=steer", "steer.target=constant",
         "steer.target_run={tmp}/earlier"), 2, "steer.target_run is read only with steer.target=run",
         absent=("{tmp}/runs",)),
    # steer.target_run alone implies steer.target=run: the missing folder is then named
    Case("train-target-run-implies-run-target", _train("method=steer", "steer.target_run={tmp}/nowhere"), 2,
         "nowhere/history.jsonl not found", unchanged=(), absent=("{tmp}/runs/r0",)),
    Case("train-mode-key-in-user-file", ("train", "--config", "{tmp}/mine.yaml", "@tiny"), 2,
         "adadim.alpha is read only with method=fixed",
         _replace("{tmp}/mine.yaml", "method: simclr\nadadim:\n  alpha: 0.3\n", lambda t: None),
         absent=("{tmp}/runs",)),
    Case("train-skip-bad-images-without-folder", _train("data.skip_bad_images=true"), 2,
         "data.skip_bad_images is read only with data.name=imagefolder", absent=("{tmp}/runs",)),
    Case("train-resume-checkpoints-gone", _train(), 2, "has history up to step 10 but no readable checkpoint",
         checkpoints_gone),
    Case("train-steer-target-without-summary", _train("method=steer", "steer.target_run={tmp}/bare"), 2,
         "bare has no summary.json, so whether it finished is unknown", bare_target, unchanged=("{tmp}/bare",),
         absent=("{tmp}/runs/r0",)),
    # A probe set larger than the training split (172 images) holds the whole split, says so,
    # and config.yaml records the size used; `test_a_capped_probe_size_resumes` resumes it.
    Case("train-probe-larger-than-split", _train("dynamics.probe_size=100000"), 0,
         "dynamics.probe_size=100000 is more than the 172 training images; the probe set holds all of them: "
         "dynamics.probe_size=172", unchanged=(), contains=(("{tmp}/runs/r0/config.yaml", "probe_size: 172\n"),)),
    # W&B's environment decides what the user left unset; a value it cannot follow is named
    Case("train-wandb-mode-from-environment", _train("wandb.mode=null"), 2, "WANDB_MODE='sometimes' is not one of",
         env=(("WANDB_MODE", "sometimes"),), absent=("{tmp}/runs",)),
    Case("train-image-cache-without-folder", _train("data.image_cache=false"), 2,
         "data.image_cache is read only with data.name=imagefolder", absent=("{tmp}/runs",)),
    # -- adadim train: image folders fail in one line naming the file ---------------------------
    # (a bad image is met when the folder is decoded into the image cache, before training)
    Case("train-image-folder-empty-class", IMAGES, 2, "Found no valid file for the classes c",
         image_folder_with(lambda ds: ((ds / "train" / "c").mkdir(), (ds / "val" / "c").mkdir())),
         unchanged=("{tmp}/ds",), absent=("{tmp}/runs/img",)),
    Case("train-image-folder-truncated-jpeg", IMAGES, 2, "ds/train/a/1.jpg cannot be read",
         image_folder_with(lambda ds: _truncate(ds / "train" / "a" / "1.jpg")), unchanged=("{tmp}/ds",)),
    Case("train-image-folder-garbage-jpeg", IMAGES, 2, "ds/train/b/2.jpg cannot be read (cannot identify image",
         image_folder_with(lambda ds: (ds / "train" / "b" / "2.jpg").write_bytes(b"not an image" * 20)),
         unchanged=("{tmp}/ds",)),
    Case("train-image-folder-skip-bad-images", (*IMAGES, "data.skip_bad_images=true"), 0,
         "skipped 2 unreadable image(s) of 8 in",
         image_folder_with(lambda ds: (_truncate(ds / "train" / "a" / "1.jpg"),
                                       (ds / "train" / "b" / "2.jpg").write_bytes(b"x" * 100))),
         unchanged=("{tmp}/ds",), marks=(pytest.mark.slow,)),
    # A damaged image-cache entry is decoded again, with a note; the run trains
    Case("train-image-folder-damaged-cache", (*IMAGES, "data.cache_dir={tmp}/cache"), 0,
         "is damaged (", image_folder_with(_damaged_cache), unchanged=("{tmp}/ds",)),
    # -- adadim train: resuming a run whose files are damaged ---------------------------------
    Case("train-resume-checkpoint-of-another-shape", _train(), 2, "does not fit the model of",
         _other_model_checkpoint(width=4), unchanged=("{tmp}/runs/r0/checkpoints", "{tmp}/runs/r0/config.yaml")),
    Case("train-resume-checkpoint-of-another-run", _train(), 2, "belongs to run 'other', not 'r0'",
         _other_model_checkpoint(run_id="other", width=8),
         unchanged=("{tmp}/runs/r0/checkpoints", "{tmp}/runs/r0/config.yaml")),
    Case("train-resume-checkpoint-without-model", _train(), 2, "is not an adadim checkpoint (no 'model'",
         _resume_dir(state={"step": 4, "other": torch.zeros(1)})),
    Case("train-resume-garbage-config", _train(), 2, "config.yaml", _resume_dir(config="\x00garbage: [\n")),
    # -- adadim analyze: one bad run never stops the others ------------------------------------
    Case("analyze-binary-history", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "equilibrium"), 0, "skipped run binary: history.jsonl is not UTF-8 text",
         _replace("{tmp}/runs/binary/history.jsonl", bytes(range(256)) * 4, good_runs), unchanged=("{tmp}/runs",)),
    Case("analyze-config-not-mapping", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "equilibrium"), 0, "skipped run listcfg: config.yaml holds a list, not a mapping",
         lambda tmp: (good_runs(tmp), write_run(tmp / "runs", "listcfg", planted_rows(5, constant(1), constant(1))),
                      (tmp / "runs" / "listcfg" / "config.yaml").write_text("- 1\n- 2\n")),
         unchanged=("{tmp}/runs",)),
    Case("analyze-summary-not-mapping", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "equilibrium"), 0, "skipped run badsum: summary.json holds a str, not a mapping",
         lambda tmp: (good_runs(tmp), write_run(tmp / "runs", "badsum", planted_rows(5, constant(1), constant(1))),
                      (tmp / "runs" / "badsum" / "summary.json").write_text('"finished"')),
         unchanged=("{tmp}/runs",)),
    Case("analyze-all-nan-metric", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "trajectories,equilibrium,ratio_accuracy", "--resamples", "50"), 0, "no data for key 'dynamics/ratio_H_I'",
         nan_ratio_runs, unchanged=("{tmp}/runs",)),
    Case("analyze-renamed-folder", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "trajectories,equilibrium"), 0, "analyzed 1 runs",
         lambda tmp: write_run(tmp / "runs", "renamed", planted_rows(20, constant(1.0), constant(0.5)),
                               {"run_id": "original", "final/lowlabel_top1": 0.7}), unchanged=("{tmp}/runs",)),
    Case("analyze-copied-folder", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "equilibrium"), 0, "skipped run orig-copy: duplicate of run 'orig'", copied_run, unchanged=("{tmp}/runs",)),
    Case("analyze-read-only-source", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--studies", "equilibrium"), 0,
         "the cache is in", good_runs, unchanged=("{tmp}/runs",), read_only="{tmp}/runs"),
    Case("analyze-cache-dir-unwritable", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--cache-dir",
         "{tmp}/runs/good0/history.jsonl/c"), 2, "cannot use the cache folder", good_runs),
    Case("analyze-out-is-a-file", ("analyze", "{tmp}/runs", "--out", "{tmp}/runs/good0/history.jsonl"), 2,
         "is a file, not a folder", good_runs),
    Case("analyze-out-read-only", ("analyze", "{tmp}/runs", "--out", "{tmp}/ro"), 2, "cannot be written",
         lambda tmp: (good_runs(tmp), (tmp / "ro").mkdir()), read_only="{tmp}/ro"),
    Case("analyze-not-a-project", ("analyze", "nope/nope", "--out", "{tmp}/out"), 2,
         "'nope/nope' is not a local folder, and reading it as a W&B entity/project failed",
         unchanged=(), absent=("{tmp}/out", "{tmp}/xdg-cache")),
    Case("analyze-early-one-number", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--early", "0.5"), 2,
         "--early '0.5' must be 'from,to'", good_runs),
    Case("analyze-nowhere", ("analyze", "{tmp}/nowhere", "--out", "{tmp}/out"), 2, "no runs at"),
    Case("analyze-only-bad-runs", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache"), 2,
         "no usable runs", _replace("{tmp}/runs/binary/history.jsonl", b"\xff\xfe\x00", lambda t: None)),
    # Every folder with a run's files is a candidate: a bad one is named, never silently dropped.
    Case("analyze-no-history", ANALYZE, 0, "skipped run nohist: no history.jsonl (the folder holds config.yaml",
         beside_good_runs("nohist", None), unchanged=("{tmp}/runs",)),
    Case("analyze-history-is-a-folder", ANALYZE, 0, "skipped run dirhist: history.jsonl is a folder, not a file",
         beside_good_runs("dirhist", Path.mkdir), unchanged=("{tmp}/runs",)),
    Case("analyze-history-is-a-fifo", ANALYZE, 0, "skipped run fifo: history.jsonl is not a regular file",
         beside_good_runs("fifo", os.mkfifo), unchanged=("{tmp}/runs",)),
    Case("analyze-nested-runs", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--no-cache", "--studies",
         "equilibrium"), 0, "analyzed 3 runs", nested_runs, unchanged=("{tmp}/runs",)),
    Case("analyze-swapped-cache-file", ("analyze", "{tmp}/runs", "--out", "{tmp}/out", "--studies", "equilibrium"),
         0, "the cache entry of run good1 does not match the run it was written for; rebuilt", swapped_cache,
         unchanged=()),
    Case("analyze-unfinished-names-the-flag", ANALYZE, 0, "not finished (--include-unfinished",
         lambda tmp: (good_runs(tmp), write_run(tmp / "runs", "live", planted_rows(5, constant(1), constant(1)),
                                                 {"state": "running"})), unchanged=("{tmp}/runs",)),
    Case("analyze-wandb-folder-without-wandb-file", ("analyze", "{tmp}/src", "--out", "{tmp}/out", "--no-cache"), 2,
         "nothing here is a run", lambda tmp: (tmp / "src" / "wandb" / "offline-run-x" / "files").mkdir(parents=True)),
    # -- adadim sweep ----------------------------------------------------------------------------
    Case("sweep-huge-grid", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "the grid has 1,048,576 trials, more than the limit of 10,000", huge_grid, absent=("{tmp}/runs",)),
    Case("sweep-command-mentions-adadim-train", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "command must run 'adadim train'",
         lambda tmp: sweep_file(tmp, {"method": {"value": "vicreg"}}, command=["echo", "adadim", "train", ARGS]),
         absent=("{tmp}/runs",)),
    Case("sweep-name-with-space", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "sweep name 'my sweep' is not a safe folder name",
         lambda tmp: sweep_file(tmp, {"method": {"value": "vicreg"}}, name="my sweep"), absent=("{tmp}/runs",)),
    Case("sweep-name-escapes-root", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/a/b/runs"), 2,
         "sweep name '../../x' is not a safe folder name",
         lambda tmp: sweep_file(tmp, {"method": {"value": "vicreg"}}, name="../../x"), absent=("{tmp}/a", "{tmp}/x")),
    Case("sweep-garbage-state", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "sweep.json is unreadable",
         lambda tmp: (sweep_file(tmp, {"method": {"value": "vicreg"}}),
                      _replace("{tmp}/runs/tiny/sweep.json", b"\x00{", lambda t: None)(tmp))),
    Case("sweep-binary-file", ("sweep", "validate", "{tmp}/sweep.yaml"), 2, "not a text file",
         _replace("{tmp}/sweep.yaml", b"\xff\xfe\x00\x01", lambda t: None)),
    Case("sweep-read-only-root", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/ro/runs"), 2,
         "cannot write the sweep folder",
         lambda tmp: (sweep_file(tmp, {"method": {"value": "vicreg"}}), (tmp / "ro").mkdir()), read_only="{tmp}/ro"),
    Case("sweep-trial-mode-key", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "trial 1 {'method': 'vicreg', 'steer.kp': 2.0}: steer.kp is read only with method=steer", trial_mode_sweep,
         absent=("{tmp}/runs",)),
    Case("sweep-second-runner", ("sweep", "local", "{tmp}/sweep.yaml", "--root", "{tmp}/runs"), 2,
         "/runs/tiny is already being run by another process (PID", _hold("{tmp}/runs/tiny"),
         absent=("{tmp}/runs/tiny/sweep.json", "{tmp}/runs/tiny/logs")),
    Case("study-second-runner", ("study", "--file", "{tmp}/sweep.yaml", "--root", "{tmp}/runs", "--out",
         "{tmp}/out"), 2, "/runs is already being run by another process (PID", _hold("{tmp}/runs"),
         absent=("{tmp}/runs/tiny", "{tmp}/out")),
    # -- adadim noise-floor ------------------------------------------------------------------------
    Case("noise-floor-checkpoint-of-another-shape", ("noise-floor", "--run", "{tmp}/runs/r0", "--repeats", "3"), 2,
         "does not fit the model of", _other_model_checkpoint(width=4)),
    Case("noise-floor-checkpoint-of-another-run", ("noise-floor", "--run", "{tmp}/runs/r0", "--repeats", "3"), 2,
         "belongs to run 'other', not 'r0'", _other_model_checkpoint(run_id="other", width=8)),
    Case("sweep-create-value-w-and-b-would-cut", ("sweep", "create", "{tmp}/sweep.yaml"), 2,
         "would not read 'wandb.group=exp #1' as written",
         lambda tmp: sweep_file(tmp, {"wandb.group": {"values": ["exp #1"]}})),
]  # fmt: skip


# ---- running a case --------------------------------------------------------------------------


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@contextmanager
def read_only(folder: Path):
    """``folder`` unwritable for this process: mode 0555, and for root (whom modes do not stop)
    the immutable attribute; skips where neither works."""
    folder.chmod(0o555)
    immutable = False
    try:
        if _can_write(folder) and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        if _can_write(folder):
            pytest.skip("cannot make a folder read-only here (root, and no chattr +i)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself) and a digest of its bytes; folders too.
    Lock files are left out: taking and releasing a run's lock leaves its lock file behind."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": hashlib.sha1(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
        if p.name != LOCK_FILE
    }


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        return exit_.code if isinstance(exit_.code, int) else 1


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # No W&B account, and any user cache inside the case's folder.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    fill = lambda text: text.replace("{tmp}", str(tmp_path))  # noqa: E731
    helper = case.setup(tmp_path)
    argv = []
    for token in case.argv:
        argv += tiny(tmp_path) if token == "@tiny" else [fill(token)]
    before = {p: snapshot(Path(fill(p))) for p in case.unchanged}
    capsys.readouterr()
    if case.read_only:
        with read_only(Path(fill(case.read_only))):
            code = run_cli(argv)
    else:
        code = run_cli(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    assert code == case.code, f"exit {code}\n{err[-3000:]}"
    if case.code == 2:
        last = err.strip().splitlines()[-1]
        assert case.message in last, err[-3000:]  # one line, and the last one
    else:
        assert case.message in out + err, (out + err)[-3000:]
    for p in case.unchanged:
        assert snapshot(Path(fill(p))) == before[p], f"{p} changed"
    for p in case.absent:
        assert not Path(fill(p)).exists(), f"{p} was created"
    for p, text in case.contains:
        assert text in Path(fill(p)).read_text(), f"{p} lacks {text!r}"
    if isinstance(helper, subprocess.Popen):  # a process holding a lock: let it go
        helper.communicate(timeout=30)


# ---- cases that need more than a row ------------------------------------------------------------


@pytest.mark.slow  # one real trial in its own process
def test_a_value_with_a_hash_and_shell_syntax_reaches_a_local_trial_unchanged(tmp_path, monkeypatch, capsys):
    """No shell anywhere, and no YAML comment: a sweep value keeps every character on its way
    to the trial's own config."""
    monkeypatch.chdir(tmp_path)
    group = "exp #1; $(touch pwned) `touch pwned2`"
    path = sweep_file(tmp_path, {"wandb.group": {"values": [group]}, "method": {"value": "vicreg"}})
    extra = [o for o in tiny(tmp_path) if not o.startswith(("run.root", "run.id", "run.progress"))]
    assert run_cli(["sweep", "local", str(path), "--root", str(tmp_path / "runs"), *extra]) == 0, capsys.readouterr()
    trial = tmp_path / "runs" / "tiny" / "tiny-000"
    assert yaml.safe_load((trial / "config.yaml").read_text())["wandb"]["group"] == group
    assert json.loads((trial / "summary.json").read_text())["state"] == "finished"
    assert not any(p.name.startswith("pwned") for p in tmp_path.rglob("pwned*"))


def test_the_catalogue_names_each_case_once_and_only_real_commands():
    from adadim.cli import COMMANDS

    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert {c.argv[0] for c in CASES} <= set(COMMANDS)
    assert all(c.code in (0, 2) for c in CASES)


def test_pickle_payload_is_real(tmp_path):
    """The crafted checkpoint of `eval-crafted-pickle` would indeed run code under a plain
    pickle load: the case tests a real threat."""
    target = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Pwn(target)))
    assert target.exists()
    os.remove(target)


def test_a_capped_probe_size_resumes(tmp_path, monkeypatch, capsys):
    """The resume check compares the capped probe size: the same command line resumes the
    run, a probe size that is really different is refused."""
    monkeypatch.chdir(tmp_path)
    argv = ["train", *tiny(tmp_path), "dynamics.probe_size=100000"]
    assert run_cli(argv) == 0
    assert run_cli(argv) == 0, capsys.readouterr().err
    assert "different config" not in capsys.readouterr().err
    config = tmp_path / "runs" / "r0" / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    assert saved["dynamics"]["probe_size"] == 172  # the synthetic training split's size
    saved["dynamics"]["probe_size"] = 100000  # as versions before the cap recorded it
    config.write_text(yaml.safe_dump(saved))
    assert run_cli(argv) == 0, capsys.readouterr().err
    assert run_cli([*argv[:-1], "dynamics.probe_size=100"]) == 2
    assert "different config (dynamics.probe_size)" in capsys.readouterr().err


def test_a_refused_checkpoint_is_recorded_in_the_runs_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _other_model_checkpoint(run_id="other", width=8)(tmp_path)
    assert run_cli(["train", *tiny(tmp_path)]) == 2
    summary = json.loads((tmp_path / "runs" / "r0" / "summary.json").read_text())
    assert summary["state"] == "failed: checkpoint refused" and "belongs to run 'other'" in summary["error"]
    assert summary["run_id"] == "r0"  # what the summary held is kept


def test_a_swapped_cache_file_is_rebuilt_from_the_runs_own_history(tmp_path):
    swapped_cache(tmp_path)
    rs = load_runs(tmp_path / "runs", progress=False)
    assert sorted(rs.runs.index) == ["good0", "good1"]
    good1 = rs.history[rs.history["run_id"] == "good1"]
    assert len(good1) == 20 and good1["dynamics/H_R"].eq(2.0).all()  # its own history (H_R 2.0, good0's is 1.0)


HTML_GROUP = "<img src=x onerror=alert(1)>|x"


def test_a_group_name_with_html_lands_in_markdown_tables_as_text(tmp_path, capsys):
    for k in range(4):
        config = {"method": "adadim", "run": {"seed": k}, "wandb": {"group": HTML_GROUP if k % 2 else "plain"}}
        rows = planted_rows(20, constant(1.0 + k), constant(0.5))
        write_run(tmp_path / "runs", f"r{k}", rows, {"final/lowlabel_top1": 0.5 + 0.1 * k}, config)
    argv = ["analyze", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-cache", "--resamples", "50"]
    assert run_cli([*argv, "--studies", "accuracy_table"]) == 0
    tables = "".join(p.read_text() for p in (tmp_path / "out" / "tables").glob("*.md"))
    assert "&lt;img src=x onerror=alert(1)&gt;\\|x" in tables and "<img" not in tables


def test_an_arm_label_with_html_lands_in_the_results_tables_as_text():
    from adadim.analysis.runset import RunSet
    from adadim.analysis.study_results import accuracy_markdown

    runs = pd.DataFrame({"arm": [HTML_GROUP], "final/lowlabel_top1": [0.5]}, index=pd.Index(["r0"], name="run_id"))
    text = accuracy_markdown(RunSet(runs, pd.DataFrame({"run_id": ["r0"], "trainer/step": [0]}), []))
    assert "| &lt;img src=x onerror=alert(1)&gt;\\|x | 1 |" in text and "<img" not in text


@pytest.mark.slow  # a real trial in its own process
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_sweep_runner_takes_its_running_trial_with_it(tmp_path):
    """SIGKILL of `adadim sweep local`: its trial is sent SIGTERM, checkpoints and stops, so the
    same command can resume it at once instead of meeting the trial's run lock."""
    import signal
    import time

    from adadim.training.run_lock import read_owner
    from trainer_helpers import env

    path = sweep_file(tmp_path, {"method": {"value": "vicreg"}})
    extra = [o for o in tiny(tmp_path) if not o.startswith(("run.root", "run.id", "run.progress", "optim.epochs"))]
    sweep = ["sweep", "local", str(path), "--root", str(tmp_path / "runs")]
    argv = [sys.executable, "-m", "adadim.cli", *sweep]
    runner = subprocess.Popen([*argv, *extra, "optim.epochs=100000"], env=env(), stderr=subprocess.DEVNULL)
    trial = tmp_path / "runs" / "tiny" / "tiny-000"
    deadline = time.monotonic() + 120
    while not (trial / "checkpoints").is_dir() and time.monotonic() < deadline:  # training has started
        time.sleep(0.2)
    owner = read_owner(trial)
    assert owner is not None, "the trial never started"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 60
    while read_owner(trial) is not None and time.monotonic() < deadline:  # released when the trial ends
        time.sleep(0.2)
    assert read_owner(trial) is None, "the trial kept running after its runner was killed"
    assert json.loads((trial / "summary.json").read_text())["state"] == "interrupted"
