import math
import signal
import subprocess
from itertools import pairwise

import pytest
import torch
from adadim.analysis.wandb_file import read_run
from adadim.cli import main
from adadim.dynamics import MonitorSettings
from adadim.dynamics.keys import is_registered
from adadim.training.checkpoint import checkpoints, load_latest
from adadim.training.config import load_config
from adadim.training.trainer import train
from trainer_helpers import (
    CIFAR_JPEG,
    REPO,
    cifar_jpeg_folder,
    cli,
    env,
    free_port,
    history,
    history_rows,
    kill_after_rows_then_resume,
    steps_per_epoch,
    tiny_overrides,
    untimed,
    wait_for,
)

EVERY_STEP = {
    "trainer/step",
    "trainer/epoch",
    "trainer/samples_per_s",
    "train/loss",
    "train/loss_vicreg",
    "train/vicreg_invariance",
    "train/vicreg_variance",
    "train/vicreg_covariance",
    "train/loss_nt_xent",
    "train/loss_mi",
    "train/lr",
    "adadim/alpha",
    "adadim/beta",
    "adadim/erank_z_norm",
}
DYNAMICS = set(MonitorSettings().keys())  # every dynamics/ key the default monitor writes
GRADIENT_KEYS = {f"adadim/grad_{kind}_{term}" for kind in ("norm", "share") for term in ("dimension", "nt_xent", "mi")}


def test_end_to_end_offline_run_logs_every_key_locally_and_to_wandb(tmp_path):
    overrides = tiny_overrides(tmp_path, "e2e", **{"wandb.mode": "offline", "adadim.gamma": 0.1})
    summary = train(load_config(None, overrides))
    run_dir = tmp_path / "e2e"
    rows = history(run_dir)
    per_epoch = steps_per_epoch(overrides)
    assert [r["trainer/step"] for r in rows] == list(range(3 * per_epoch))
    last = rows[-1]["trainer/step"]
    for r in rows:
        assert EVERY_STEP <= r.keys()
        measured = r["trainer/step"] % 2 == 0 or r["trainer/step"] == last
        assert measured == (DYNAMICS <= r.keys())
        assert measured == (GRADIENT_KEYS <= r.keys())
        assert all(is_registered(k) for k in r), sorted(k for k in r if not is_registered(k))
        assert ("eval/knn_top1" in r) == ((r["trainer/step"] + 1) % per_epoch == 0)
        assert r["adadim/beta"] == pytest.approx(0.1 * r["adadim/alpha"])
        assert r["train/loss_mi"] != 0.0
    assert summary["state"] == "finished"
    assert not [k for k in summary if k not in ("run_dir", "state") and not is_registered(k)]
    # Four planted synthetic classes (chance 0.25): the protocol must find them clearly.
    assert summary["final/linear_top1"] > 0.4 and summary["final/lowlabel_top1"] > 0.4

    wandb_files = list((run_dir / "wandb").glob("offline-run-*/run-e2e.wandb"))
    assert len(wandb_files) == 1
    logged = read_run(wandb_files[0])
    assert logged["id"] == "e2e" and logged["exit_code"] == 0
    assert logged["config"]["method"] == "adadim" and logged["config"]["optim.lr"] == 0.5
    by_step = {int(r["_step"]): r for r in logged["history"]}
    assert sorted(by_step) == [r["trainer/step"] for r in rows]
    for r in rows:
        for key, value in r.items():
            assert by_step[r["trainer/step"]][key] == pytest.approx(value, rel=1e-6, nan_ok=True), key
    assert logged["summary"]["final/linear_top1"] == pytest.approx(summary["final/linear_top1"])


def test_same_seed_same_history_on_cpu(tmp_path):
    a = train(load_config(None, tiny_overrides(tmp_path, "a", **{"optim.epochs": 1})))
    b = train(load_config(None, tiny_overrides(tmp_path, "b", **{"optim.epochs": 1})))
    assert a["state"] == b["state"] == "finished"
    ha, hb = history(tmp_path / "a"), history(tmp_path / "b")
    assert untimed(ha) == untimed(hb)


@pytest.mark.parametrize("cadence", [0, 5])
def test_the_measurement_cadence_does_not_change_training(tmp_path, cadence):
    """The instrument must not perturb what it measures: the same run measured every 2 steps,
    every 5, or never (alpha still read from the probe set every 3 steps) takes the same steps,
    bit for bit. So a default cadence can change without retraining the recipe behind it. Rows
    every 4 steps, so a measurement also turns logging on at steps that would be quiet."""
    runs = {}
    for every in (2, cadence):
        run_id = f"every-{every}"
        extra = {"optim.epochs": 2, "dynamics.every": every, "run.log_every": 4}
        overrides = tiny_overrides(tmp_path, run_id, **extra)
        assert train(load_config(None, overrides))["state"] == "finished"
        rows = history(tmp_path / run_id)
        final = load_latest(tmp_path / run_id / "checkpoints")[1]
        runs[every] = (rows, final)
    (dense_rows, dense), (sparse_rows, sparse) = runs[2], runs[cadence]
    assert any("dynamics/H_R" in r for r in dense_rows)
    assert sum("dynamics/H_R" in r for r in sparse_rows) < sum("dynamics/H_R" in r for r in dense_rows)
    keys = ("train/loss", "train/loss_vicreg", "train/loss_nt_xent", "adadim/alpha")
    dense_by_step = {r["trainer/step"]: [r[k] for k in keys] for r in dense_rows}
    sparse_by_step = {r["trainer/step"]: [r[k] for k in keys] for r in sparse_rows}
    shared = dense_by_step.keys() & sparse_by_step.keys()
    assert len(shared) >= 4
    assert all(dense_by_step[step] == sparse_by_step[step] for step in shared)
    assert dense["step"] == sparse["step"]
    for name, tensor in dense["model"].items():
        assert torch.equal(tensor, sparse["model"][name]), name
    assert dense["controller"] == sparse["controller"]


# method=steer with a warm-up and an identified direction: the kill lands in the middle of the
# identification (control steps at 10, 15, ..., 45), so its state must come back from the checkpoint.
STEERED = {"method": "steer", "steer.direction": "auto", "steer.warmup_steps": 10, "steer.value": 3.0}
STEER_KEYS = {"steer/setpoint", "steer/error", "steer/integral", "steer/direction"}


@pytest.mark.slow
@pytest.mark.parametrize("method", [{}, STEERED, {"method": "byol"}], ids=["adadim", "steer", "byol"])
def test_sigkill_then_resume_gives_the_uninterrupted_history(tmp_path, method):
    extra = {"optim.epochs": 30, "run.checkpoint_every_steps": 7, "dynamics.every": 5, "eval.every_epochs": 4}
    extra.update(method)
    args = cli("train", *tiny_overrides(tmp_path, "killed", **extra))
    proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history_file = tmp_path / "killed" / "history.jsonl"
    wait_for(
        lambda: proc.poll() is not None or history_rows(history_file) >= 40, 120, "40 history rows before the kill"
    )
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoints(tmp_path / "killed" / "checkpoints"), "no checkpoint before the kill"
    total = 30 * steps_per_epoch(tiny_overrides(tmp_path, "killed", **extra))
    killed_rows = len(history_file.read_text().splitlines())
    assert killed_rows < total

    resumed = subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference = train(load_config("digits", tiny_overrides(tmp_path, "straight", **extra)))  # the CLI default config
    assert reference["state"] == "finished"
    got, want = history(tmp_path / "killed"), history(tmp_path / "straight")
    assert [r["trainer/step"] for r in got] == list(range(total))
    assert untimed(got) == untimed(want)
    if method.get("method") == "steer":
        _check_steered_history(got)
    if method.get("method") == "byol":  # the target network and tau came back bit for bit
        resumed_state = load_latest(tmp_path / "killed" / "checkpoints")[1]["byol"]
        straight_state = load_latest(tmp_path / "straight" / "checkpoints")[1]["byol"]
        assert resumed_state["tau"] == straight_state["tau"]
        for name, value in straight_state["network"].items():
            assert torch.equal(resumed_state["network"][name], value), name


def _check_steered_history(rows):
    """steer/* on exactly the measuring rows; α moves only there; the direction is identified."""
    measured = [r for r in rows if "dynamics/ratio_H_I" in r]
    assert [r["trainer/step"] for r in measured] == [r["trainer/step"] for r in rows if STEER_KEYS <= r.keys()]
    assert all(is_registered(k) for r in rows for k in r)
    for before, after in pairwise(rows):
        if "steer/setpoint" not in after:
            assert after["adadim/alpha"] == before["adadim/alpha"]
    assert {r["adadim/alpha"] for r in rows if r["trainer/step"] < 10} == {0.5}  # the warm-up
    directions = [r["steer/direction"] for r in measured]
    assert directions[2:10] == [0.0] * 8 and directions[-1] in (-1.0, 1.0)
    assert {r["steer/setpoint"] for r in measured} == {3.0}


@pytest.mark.slow
def test_offline_wandb_after_sigkill_and_resume_holds_each_step_once(tmp_path):
    """A killed run's offline file lacks its unflushed tail and the resumed run replays steps
    after the checkpoint; the resumed run's one offline folder must hold every step exactly once."""
    extra = {"optim.epochs": 30, "run.checkpoint_every_steps": 7, "wandb.mode": "offline"}
    args = cli("train", *tiny_overrides(tmp_path, "wb", **extra))
    resumed = kill_after_rows_then_resume(args, tmp_path / "wb" / "history.jsonl", timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    folders = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(folders) == 1, folders
    assert list((tmp_path / "wb" / "wandb-superseded").glob("offline-run-*")), "the killed folder is kept"
    logged = read_run(next(folders[0].glob("*.wandb")))
    steps = [int(r["_step"]) for r in logged["history"]]
    rows = history(tmp_path / "wb")
    assert steps == [r["trainer/step"] for r in rows] == list(range(len(rows)))
    by_step = {int(r["_step"]): r for r in logged["history"]}
    for r in rows:
        assert by_step[r["trainer/step"]]["train/loss"] == pytest.approx(r["train/loss"], rel=1e-6)


@pytest.mark.slow
def test_two_trainers_on_one_run_id_one_runs_the_other_is_refused(tmp_path):
    args = cli("train", *tiny_overrides(tmp_path, "shared", **{"optim.epochs": 400}))
    first = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    history_file = tmp_path / "shared" / "history.jsonl"
    wait_for(lambda: first.poll() is not None or history_rows(history_file) >= 3, 120, "the first trainer's rows")
    assert first.poll() is None, "the first trainer ended before the second started; make it longer"
    second = subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert first.poll() is None, "the refused trainer must not stop the running one"
    first.send_signal(signal.SIGTERM)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, first_err[-2000:]
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"PID {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    # The running trainer's history is whole: every step up to its checkpoint, once.
    rows = history(tmp_path / "shared")
    _, state = load_latest(tmp_path / "shared" / "checkpoints")
    assert [r["trainer/step"] for r in rows] == list(range(state["step"]))


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    args = cli(
        "train", *tiny_overrides(tmp_path, "term", **{"optim.epochs": 200, "run.checkpoint_every_steps": 100000})
    )
    proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    history_file = tmp_path / "term" / "history.jsonl"
    wait_for(lambda: proc.poll() is not None or history_rows(history_file) >= 5, 120, "5 history rows")
    assert proc.poll() is None, "the run ended before SIGTERM could be sent"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted at step" in err
    latest = load_latest(tmp_path / "term" / "checkpoints")
    assert latest is not None
    rows = history(tmp_path / "term")
    assert latest[1]["step"] == len(rows)


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, capsys):
    code = main(
        [
            "train",
            *tiny_overrides(
                tmp_path,
                "nan",
                **{"optim.name": "sgd", "optim.lr": 1e30, "optim.warmup_epochs": 0, "run.checkpoint_every_steps": 1},
            ),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "the loss became" in err and "Last good checkpoint" in err
    latest = load_latest(tmp_path / "nan" / "checkpoints")
    assert latest is not None
    for tensor in latest[1]["model"].values():
        assert torch.isfinite(tensor.float()).all()
    assert '"state": "failed: non-finite loss"' in (tmp_path / "nan" / "summary.json").read_text()


@pytest.mark.parametrize(
    "override,message",
    [
        ("bogus.key=1", "Key 'bogus' not in 'TrainConfig'"),
        ("optim.lr=fast", "optim.lr: Value 'fast'"),
        ("optim.lr=-0.1", "optim.lr must be >= 0"),
        ("method=moco", "unknown method 'moco'"),
        ("data.name=mnist", "unknown dataset 'mnist'"),
        ("data.name=cifar10", "data.root is required"),
        ("model.backbone=vit", "unknown backbone"),
        ("wandb.mode=sometimes", "wandb.mode must be"),
    ],
)
def test_bad_config_is_refused_before_work_with_exit_2(override, message, tmp_path, capsys):
    assert main(["train", f"run.root={tmp_path}", override]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir()), "nothing may be written for a refused config"


def test_missing_dataset_names_the_expected_path(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    # The CIFAR config: the digits config's augmentation strengths do not apply to colour images.
    cifar = ["train", "--config", "cifar10-resnet18"]
    code = main([*cifar, "data.name=cifar10", f"data.root={tmp_path / 'empty'}", f"run.root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cifar-10-batches-py" in err and "data.download=true" in err
    code = main([*cifar, "data.name=imagefolder", f"data.root={tmp_path / 'empty'}", f"run.root={tmp_path / 'runs'}"])
    assert code == 2 and "train/<class>" in capsys.readouterr().err


def test_resume_refuses_a_changed_config(tmp_path, capsys):
    assert main(["train", *tiny_overrides(tmp_path, "same", **{"optim.epochs": 1})]) == 0
    assert main(["train", *tiny_overrides(tmp_path, "same", **{"optim.epochs": 1, "optim.lr": 0.1})]) == 2
    assert "different config (optim.lr)" in capsys.readouterr().err
    # How the process runs is not the experiment: these may change on resume.
    process_only = {"optim.epochs": 1, "run.progress": "true", "run.retain_freed_memory": "false"}
    assert main(["train", *tiny_overrides(tmp_path, "same", **process_only)]) == 0


@pytest.mark.parametrize("method", ["vicreg", "simclr", "barlow", "fixed", "linear", "cosine"])
def test_every_method_trains(method, tmp_path):
    summary = train(load_config(None, tiny_overrides(tmp_path, method, method=method, **{"optim.epochs": 1})))
    rows = history(tmp_path / method)
    alphas = [r["adadim/alpha"] for r in rows]
    expected = {"vicreg": 0.0, "simclr": 1.0, "barlow": 0.0, "fixed": 0.5}
    if method in expected:
        assert set(alphas) == {expected[method]}
    else:
        assert alphas[0] == pytest.approx(0.0) and alphas[-1] == pytest.approx(1.0)
    if method == "barlow":
        assert all("train/loss_barlow" in r for r in rows)
    assert math.isfinite(summary["train/loss"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_on_gloo(tmp_path):
    args = [
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "adadim.training.cli",
        "train",
        *tiny_overrides(tmp_path, "ddp", **{"optim.epochs": 2}),
    ]
    import sys

    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = history(tmp_path / "ddp")
    # One writer (rank 0), one row per global step, and the monitor saw the global batch.
    assert [r["trainer/step"] for r in rows] == list(range(2 * steps_per_epoch(tiny_overrides(tmp_path, "ddp"))))
    # The probe set is split across ranks and gathered: the same samples one process measures.
    single = train(load_config("digits", tiny_overrides(tmp_path, "single", **{"optim.epochs": 2})))
    assert single["state"] == "finished"
    first_single, first_ddp = history(tmp_path / "single")[0], rows[0]
    assert first_ddp["dynamics/n_samples"] == first_single["dynamics/n_samples"] > 2 * 32  # not a batch
    for key in DYNAMICS:  # step 0 measures the shared initialisation: equal up to float rounding
        assert first_ddp[key] == pytest.approx(first_single[key], rel=1e-4, abs=1e-5, nan_ok=True), key
    batch = [r for r in rows if "dynamics/n_samples" in r]
    assert batch and '"state": "finished"' in (tmp_path / "ddp" / "summary.json").read_text()


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"no CIFAR-10 JPEG archive at {CIFAR_JPEG}")
def test_imagefolder_on_real_cifar10_jpegs(tmp_path):
    root = cifar_jpeg_folder(tmp_path / "cifar10-jpeg", 20, 10)
    overrides = tiny_overrides(
        tmp_path,
        "folder",
        **{"data.name": "imagefolder", "data.root": str(root), "optim.epochs": 1, "eval.final_probe_epochs": 2},
    )
    summary = train(load_config(None, overrides))
    assert summary["state"] == "finished"
    rows = history(tmp_path / "folder")
    assert len(rows) == steps_per_epoch(overrides)
    # Scored on the 100 held-out JPEGs (10 classes x 10): an accuracy in steps of 1/100.
    correct = summary["final/linear_top1"] * 100
    assert abs(correct - round(correct)) < 1e-6


def test_unknown_config_file_and_malformed_override_are_refused(tmp_path, capsys):
    assert main(["train", "--config", "no-such-config", f"run.root={tmp_path}"]) == 2
    assert "config file 'no-such-config' not found" in capsys.readouterr().err
    assert main(["train", "optim.lr"]) == 2
    assert "not of the form key=value" in capsys.readouterr().err


def test_channels_last_converts_image_batches_and_passes_other_tensors_through():
    from adadim.training.models import channels_last

    images = torch.randn(4, 3, 5, 6)
    converted = channels_last(images)
    assert not images.is_contiguous(memory_format=torch.channels_last)
    assert converted.is_contiguous(memory_format=torch.channels_last) and torch.equal(converted, images)
    features = torch.randn(4, 7)
    assert channels_last(features) is features
