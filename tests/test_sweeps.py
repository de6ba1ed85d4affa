import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from adadim.cli import main
from adadim.sweeps import cli as sweep_cli
from adadim.sweeps.local import LocalSweep
from adadim.sweeps.spec import SweepError, format_value, grid_trials, load_sweep, random_trials
from adadim.training.config import load_config
from trainer_helpers import CIFAR_JPEG, REPO, cifar_jpeg_folder, env, history, history_rows, tiny_overrides, wait_for

BUNDLED = [
    "baselines",
    "schedules",
    "adadim",
    "recipe-digits",
    "study-digits",
    "study-digits-alpha",
    "study-digits-mi",
    "study-digits-balance",
    "study-cifar10",
    "study-cifar10-alpha",
    "study-cifar10-mi",
    "study-cifar10-balance",
    "study-digits-length",
    "steer-digits",
    "recipe-byol-digits",
    "recipe-cifar10-cpu",
    "study-cifar10-cpu",
    "study-cifar10-cpu-fixed",
    "study-cifar10-cpu-alpha",
]
# Trials run as ordinary runs: W&B stays in its default offline mode.
TINY = [
    o
    for o in tiny_overrides(Path("unused"), "unused")
    if not o.startswith(("run.root", "run.id", "run.progress", "wandb.mode"))
]


def _sweep_file(tmp_path: Path, parameters: dict, method: str = "grid", name: str = "tiny", **extra) -> Path:
    spec = {
        "name": name,
        "method": method,
        "metric": {"name": "final/val_lowlabel_top1", "goal": "maximize"},
        "parameters": parameters,
        "command": ["adadim", "train", "${args_no_hyphens}"],
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_sweeps_validate_against_the_trainer_config(name):
    sweep = load_sweep(name)
    assert sweep.metric.startswith("final/val_")
    assert any(p.key == "wandb.group" for p in sweep.parameters)
    if sweep.method == "grid":
        trials = grid_trials(sweep)
        assert len({json.dumps(t, sort_keys=True) for t in trials}) == len(trials)
    else:
        assert len(random_trials(sweep, 5, 0)) == 5


def test_the_digits_study_covers_every_arm_the_study_asks_for():
    from adadim.sweeps.study import STUDY_DIGITS

    trials = {name: grid_trials(load_sweep(name)) for name in STUDY_DIGITS}
    methods = trials["study-digits"]
    assert {t["method"] for t in methods} == {"vicreg", "simclr", "fixed", "linear", "cosine", "adadim", "byol"}
    assert {t["run.seed"] for t in methods} == set(range(5)) and len(methods) == 35
    ladder = trials["study-digits-alpha"]
    # alpha = 0, 0.5, 1 are part 1's VICReg, fixed and SimCLR runs: not run twice.
    assert sorted({t["adadim.alpha"] for t in ladder}) == [0.1, 0.25, 0.75, 0.9] and len(ladder) == 12
    mi = trials["study-digits-mi"]
    assert {(t["adadim.gamma"], t["adadim.mi_sign"]) for t in mi} == {
        (g, s) for g in (0.05, 0.2) for s in ("maximize", "minimize")
    }
    assert len(mi) == 12 and all(t["method"] == "adadim" for t in mi)
    assert [t["adadim.balance"] for t in trials["study-digits-balance"]] == ["grad"] * 3
    schedules = grid_trials(load_sweep("schedules"))
    assert len(schedules) == 3 * 3 + 2 * 3  # fixed x alpha x seed, then linear/cosine x seed
    assert all("adadim.alpha" not in t for t in schedules if t["method"] != "fixed")


def test_a_sweep_command_may_name_the_trainer_config(tmp_path):
    sweep = load_sweep("study-cifar10")
    assert sweep.config == "cifar10-resnet18"
    runner = LocalSweep(sweep, tmp_path)
    command = runner._command(runner_trial(sweep))
    assert command[3:6] == ["train", "--config", "cifar10-resnet18"]
    bad = _sweep_file(tmp_path, {"method": {"value": "vicreg"}}, command=["adadim", "train", "--config", "nope", ARGS])
    with pytest.raises(SweepError, match="--config nope: config file 'nope' not found"):
        load_sweep(str(bad))


def runner_trial(sweep):
    from adadim.sweeps.local import Trial

    return Trial("t-000", grid_trials(sweep)[0])


@pytest.mark.parametrize(
    "parameters,extra,message",
    [
        ({"optim.bogus": {"value": 1}}, {}, "Key 'bogus' not in"),
        ({"optim.lr": {"values": [0.1, -1.0]}}, {}, "optim.lr must be"),
        ({"method": {"values": ["vicreg", "moco"]}}, {}, "unknown method 'moco'"),
        ({"method": {"value": "vicreg"}}, {"method": "hyperband"}, "search method 'hyperband' is not supported"),
        ({"optim.lr": {"min": 0.1, "max": 1.0}}, {}, "grid sweep needs value or values"),
        (
            {"optim.lr": {"distribution": "beta", "min": 0.1, "max": 1.0}},
            {"method": "random"},
            "unsupported distribution",
        ),
        ({"method": {"value": "vicreg"}}, {"command": ["python", "train.py"]}, "command must run 'adadim train'"),
        ({"method": {"value": "vicreg"}}, {"metric": {}}, "metric needs a name"),
        ({"method": {"value": "vicreg"}}, {"early_stop": 1}, "unknown top-level keys"),
        ({"method": {"value": "vicreg"}}, {"metric": "final/val_lowlabel_top1"}, "metric needs a name"),
        ({"method": {"value": "vicreg"}}, {"run_cap": -3}, "run_cap must be a positive integer"),
    ],
)
def test_bad_sweep_files_are_refused_before_anything_runs(tmp_path, capsys, parameters, extra, message):
    path = _sweep_file(tmp_path, parameters, **{"method": extra.pop("method", "grid")}, **extra)
    with pytest.raises(SweepError, match=message):
        load_sweep(str(path))
    assert main(["sweep", "local", str(path), "--root", str(tmp_path / "runs")]) == 2
    assert message.split("'")[0] in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_root_seeded_with_finished_trial_folders_skips_them(tmp_path, capsys):
    # A study continued on another machine: the finished trials' folders copied in, no sweep.json.
    path = _sweep_file(tmp_path, {"method": {"values": ["vicreg", "simclr"]}, "run.seed": {"values": [0, 1]}})
    root = tmp_path / "runs"
    for index, seed in enumerate([0, 1]):
        folder = root / "tiny" / f"tiny-{index:03d}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"state": "finished", "final/val_lowlabel_top1": 0.4}))
        (folder / "config.yaml").write_text(yaml.safe_dump({"method": "vicreg", "run": {"seed": seed}}))
    # The grid's first two trials are those two folders: nothing runs.
    assert main(["sweep", "local", str(path), "--root", str(root), "--count", "2"]) == 0
    assert "started" not in capsys.readouterr().err
    state = json.loads((root / "tiny" / "sweep.json").read_text())
    assert [(t["trial_id"], t["status"], t["metric"]) for t in state["trials"]] == [
        ("tiny-000", "finished", 0.4),
        ("tiny-001", "finished", 0.4),
    ]


@pytest.mark.slow
def test_local_grid_sweep_runs_records_failures_and_skips_finished_trials_on_rerun(tmp_path, capsys):
    path = _sweep_file(tmp_path, {"method": {"values": ["vicreg", "simclr"]}, "optim.epochs": {"value": 1}})
    root = tmp_path / "runs"
    assert main(["sweep", "local", str(path), "--root", str(root), "--count", "1", *TINY]) == 0
    state = json.loads((root / "tiny" / "sweep.json").read_text())
    assert [t["status"] for t in state["trials"]] == ["finished"]
    first = (root / "tiny" / "tiny-000" / "history.jsonl").stat().st_mtime_ns
    # The full grid: the finished trial is skipped, the second one runs.
    assert main(["sweep", "local", str(path), "--root", str(root), *TINY]) == 0
    out = capsys.readouterr()
    assert out.err.count("started tiny-") == 2  # one per call: tiny-000 once, tiny-001 once
    assert (root / "tiny" / "tiny-000" / "history.jsonl").stat().st_mtime_ns == first
    state = json.loads((root / "tiny" / "sweep.json").read_text())
    assert [(t["params"]["method"], t["status"]) for t in state["trials"]] == [
        ("vicreg", "finished"),
        ("simclr", "finished"),
    ]
    assert all(0 <= t["metric"] <= 1 for t in state["trials"])
    assert list((root / "tiny" / "tiny-001" / "wandb").glob("offline-run-*/run-tiny-001.wandb"))
    assert "2 finished" in out.out

    # A value the schema accepts but this data cannot serve: recorded, reported, the rest go on.
    failing = _sweep_file(
        tmp_path, {"data.batch_size": {"values": [4096, 32]}, "optim.epochs": {"value": 1}}, name="fails"
    )
    assert main(["sweep", "local", str(failing), "--root", str(root), *TINY]) == 1
    trials = json.loads((root / "fails" / "sweep.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["failed", "finished"]
    assert trials[0]["returncode"] == 2 and "fewer than one batch" in trials[0]["error"]
    assert "fails-000 failed (exit 2)" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupted_sweep_resumes_its_trial_without_duplicate_steps(tmp_path):
    path = _sweep_file(tmp_path, {"method": {"value": "vicreg"}, "optim.epochs": {"value": 40}}, name="long")
    root = tmp_path / "runs"
    extra = [o for o in TINY if not o.startswith("run.checkpoint")] + ["run.checkpoint_every_steps=5"]
    args = [sys.executable, "-m", "adadim.cli", "sweep", "local", str(path), "--root", str(root), *extra]
    proc = subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history_file = root / "long" / "long-000" / "history.jsonl"
    wait_for(lambda: proc.poll() is not None or history_rows(history_file) >= 20, 120, "20 rows of the first trial")
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    state = json.loads((root / "long" / "sweep.json").read_text())
    assert state["trials"][0]["status"] == "interrupted"
    rerun = subprocess.run(args, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    steps = [r["trainer/step"] for r in history(root / "long" / "long-000")]
    assert steps == list(range(len(steps))) and len(steps) > 20
    assert json.loads((root / "long" / "sweep.json").read_text())["trials"][0]["status"] == "finished"


@pytest.mark.slow
def test_bayes_search_with_optuna(tmp_path):
    pytest.importorskip("optuna")
    path = _sweep_file(
        tmp_path,
        {
            "adadim.gamma": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
            "optim.epochs": {"value": 1},
        },
        method="bayes",
        name="bayes",
    )
    runner = LocalSweep(load_sweep(str(path)), tmp_path / "runs", count=2, extra=TINY)
    assert runner.run() == 0
    trials = list(runner.trials.values())
    assert len(trials) == 2 and all(t.status == "finished" for t in trials)
    assert all(0.001 <= t.params["adadim.gamma"] <= 0.1 for t in trials)


def test_create_and_agent_command_lines_at_the_process_boundary(tmp_path, monkeypatch, capsys):
    assert sweep_cli.create_command("s.yaml", "proj", "ent") == [
        sys.executable,
        "-m",
        "wandb",
        "sweep",
        "--project",
        "proj",
        "--entity",
        "ent",
        "s.yaml",
    ]
    assert sweep_cli.agent_command("ent/proj/abc", 3) == [
        sys.executable,
        "-m",
        "wandb",
        "agent",
        "--count",
        "3",
        "ent/proj/abc",
    ]
    calls = []

    class Done:
        returncode = 0
        stdout = ""
        stderr = (
            "wandb: Creating sweep from: s.yaml\nwandb: Created sweep with ID: abc123\n"
            "wandb: Run sweep agent with: wandb agent ent/proj/abc123\n"
        )

    monkeypatch.setattr(sweep_cli.subprocess, "run", lambda argv, **kw: calls.append(argv) or Done())
    assert main(["sweep", "create", "baselines", "--project", "proj", "--entity", "ent"]) == 0
    assert calls[0][:4] == [sys.executable, "-m", "wandb", "sweep"] and calls[0][-1].endswith("sweeps/baselines.yaml")
    out = capsys.readouterr().out
    assert "sweep id: abc123" in out and "adadim sweep agent ent/proj/abc123" in out
    monkeypatch.setattr(sweep_cli.subprocess, "call", lambda argv: calls.append(argv) or 0)
    assert main(["sweep", "agent", "ent/proj/abc123", "--count", "2"]) == 0
    assert calls[-1] == [sys.executable, "-m", "wandb", "agent", "--count", "2", "ent/proj/abc123"]
    with pytest.raises(SweepError, match="no sweep id"):
        sweep_cli.parse_created("wandb: ERROR api key not configured")


@pytest.mark.parametrize("script", ["slurm-agents.sbatch", "torchrun-train.sh"])
def test_cluster_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(REPO / "sweeps" / script)]).returncode == 0


@pytest.mark.slow
def test_study_code_path_on_a_two_trial_sweep(tmp_path):
    path = _sweep_file(
        tmp_path, {"method": {"values": ["vicreg", "adadim"]}, "optim.epochs": {"value": 2}}, name="mini-study"
    )
    out = tmp_path / "study"
    code = main(
        ["study", "--file", str(path), "--root", str(tmp_path / "runs"), "--out", str(out), "--resamples", "100", *TINY]
    )
    assert code == 0
    accuracy = (out / "results" / "accuracy.md").read_text()
    assert "| vicreg | 1 |" in accuracy and "| adadim | 1 |" in accuracy and "| raw pixels |" in accuracy
    assert (out / "results" / "claims.md").is_file() and (out / "results" / "trajectories.png").is_file()
    assert (out / "report.html").is_file() and (out / "figures" / "information_plane.png").is_file()


ARGS = "${args_no_hyphens}"


@pytest.mark.parametrize(
    "command",
    [
        ["adadim", "train", ARGS],
        ["${env}", "adadim", "train", ARGS],
        ["python", "-m", "adadim.training.cli", "train", ARGS],
        ["${env}", "${interpreter}", "-m", "adadim.training.cli", "train", ARGS],
        ["/opt/venv/bin/python3", "-m", "adadim.training.cli", "train", ARGS],
        ["bash", "sweeps/torchrun-train.sh", ARGS],
        ["/cluster/adadim/sweeps/torchrun-train.sh", ARGS],
    ],
)
def test_the_allowed_commands_as_token_lists(tmp_path, command):
    assert load_sweep(str(_sweep_file(tmp_path, {"method": {"value": "vicreg"}}, command=command))).name == "tiny"


@pytest.mark.parametrize(
    "command",
    [
        "adadim train ${args_no_hyphens}",  # a string, not a token list
        ["echo", "adadim train", ARGS],  # mentions adadim and train, runs echo
        ["python", "train.py", "adadim", ARGS],
        ["adadim", "train", ARGS, "&&", "rm", "-rf", "x"],
        ["adadim", "eval", ARGS],
        ["adadim", "train", "${args}"],
        ["python", "-m", "training.cli", "train", ARGS],
        ["bash", "sweeps/other.sh", ARGS],
        ["adadim", "train", 3],
    ],
)
def test_commands_are_checked_token_by_token(tmp_path, command):
    with pytest.raises(SweepError, match="command must run 'adadim train'"):
        load_sweep(str(_sweep_file(tmp_path, {"method": {"value": "vicreg"}}, command=command)))


@pytest.mark.parametrize("name", ["my sweep", "../../x", "a/b", ".hidden", "..", "-dash", "x" * 81, 42])
def test_unsafe_sweep_names_are_refused_and_nothing_is_written(tmp_path, capsys, name):
    path = _sweep_file(tmp_path, {"method": {"value": "vicreg"}}, name="file")
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "name": name}))
    root = tmp_path / "deep" / "er" / "runs"
    assert main(["sweep", "local", str(path), "--root", str(root)]) == 2
    assert "is not a safe folder name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.yaml"]


@pytest.mark.slow
def test_a_huge_grid_is_refused_before_it_is_built(tmp_path, capsys):
    # 10 keys x 4 values = 4**10 (about a million) combinations; building them would take gigabytes.
    keys = ["loss.temperature", "loss.invariance_weight", "loss.variance_weight", "loss.covariance_weight"]
    keys += ["adadim.gamma", "adadim.ema", "optim.weight_decay", "optim.momentum", "optim.probe_lr", "run.seed"]
    grid = {k: {"values": [0.1, 0.2, 0.3, 0.4]} for k in keys}
    grid["run.seed"] = {"values": [0, 1, 2, 3]}
    path = _sweep_file(tmp_path, grid, name="huge")
    sweep = load_sweep(str(path))
    started = time.perf_counter()
    with pytest.raises(SweepError, match="the grid has 1,048,576 trials, more than the limit of 10,000"):
        grid_trials(sweep)
    assert time.perf_counter() - started < 1.0
    root = tmp_path / "runs"
    assert main(["sweep", "local", str(path), "--root", str(root)]) == 2
    assert "--max-trials" in capsys.readouterr().err and not root.exists()
    assert main(["sweep", "local", str(path), "--root", str(root), "--count", "20000"]) == 2
    assert "--count asks for 20,000 trials" in capsys.readouterr().err and not root.exists()
    # --count takes the first trials without building the rest; --max-trials moves the limit.
    assert len(grid_trials(sweep, count=3)) == 3
    with pytest.raises(SweepError, match="limit of 100"):
        grid_trials(sweep, limit=100)
    small = load_sweep(str(_sweep_file(tmp_path, {"run.seed": {"values": list(range(50))}}, name="small")))
    assert len(grid_trials(small, limit=50)) == 50
    with pytest.raises(SweepError, match="the grid has 50 trials"):
        grid_trials(small, limit=49)
    assert main(["sweep", "validate", str(path)]) == 0
    assert "(1,048,576 combinations)" in capsys.readouterr().out


TRICKY_TEXT = [
    "exp #1",
    "#hash",
    "x # y # z",
    "a: b",
    "it's",
    'say "hi"',
    "[unclosed",
    "  padded  ",
    "ünï-çødé",
    "back\\slash",
    "$(touch pwned); `id`",
    "",
    "plain",
]


@pytest.mark.parametrize("text", TRICKY_TEXT)
def test_a_text_value_reaches_the_trainer_with_every_character(text):
    cfg = load_config(None, [f"wandb.group={format_value(text)}", f"wandb.tags={format_value([text, 'b'])}"])
    assert cfg.wandb.group == text and list(cfg.wandb.tags) == [text, "b"]


def test_values_w_and_b_would_cut_are_refused_for_an_online_sweep(tmp_path, capsys):
    path = _sweep_file(tmp_path, {"wandb.group": {"values": ["exp #1"]}}, name="hashes")
    assert main(["sweep", "create", str(path)]) == 2
    assert "'wandb.group=exp #1'" in capsys.readouterr().err
    # The trainer itself refuses what YAML would cut, rather than training under a cut name.
    assert main(["train", "wandb.group=exp #1", f"run.root={tmp_path / 'runs'}"]) == 2
    assert "quote the value" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_probabilities_weight_a_random_search_and_are_refused_elsewhere(tmp_path):
    weights = {"method": {"values": ["vicreg", "simclr"], "probabilities": [0.9, 0.1]}}
    sweep = load_sweep(_sweep_file(tmp_path, weights, method="random", name="weighted"))
    drawn = [t["method"] for t in random_trials(sweep, 400, seed=0)]
    assert 0.85 < drawn.count("vicreg") / 400 < 0.95
    with pytest.raises(SweepError, match="probabilities must sum to 1"):
        load_sweep(
            _sweep_file(
                tmp_path,
                {"method": {"values": ["vicreg", "simclr"], "probabilities": [0.5, 0.6]}},
                method="random",
                name="bad-sum",
            )
        )
    with pytest.raises(SweepError, match="weight a random search only"):
        load_sweep(_sweep_file(tmp_path, weights, method="grid", name="weighted-grid"))


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"no CIFAR-10 JPEG archive at {CIFAR_JPEG}")
def test_the_cifar10_study_smoke_on_a_jpeg_subset(tmp_path):
    """study-cifar10.yaml as shipped (its command picks the cifar10-resnet18 config), cut to two
    methods and one seed, on 20 JPEGs per class: the config, the ResNet-18, the image-folder
    path and the study's analysis and results all run."""
    root = cifar_jpeg_folder(tmp_path / "cifar10-jpeg", 12, 8)
    spec = yaml.safe_load((REPO / "sweeps" / "study-cifar10.yaml").read_text())
    spec["name"] = "cifar-smoke"
    spec["parameters"]["method"] = {"values": ["vicreg", "adadim"]}
    spec["parameters"]["run.seed"] = {"value": 0}
    path = tmp_path / "cifar-smoke.yaml"
    path.write_text(yaml.safe_dump(spec))
    small = [
        "data.name=imagefolder",
        f"data.root={root}",
        "data.batch_size=32",
        "data.num_workers=0",
        "model.projector=[64,32]",
        "optim.epochs=1",
        "optim.warmup_epochs=0",
        "dynamics.every=1",
        "dynamics.probe_size=32",
        "adadim.every=1",
        "eval.every_epochs=0",
        "eval.final_probe_epochs=2",
        "eval.lowlabel_k=[1]",
        "eval.lowlabel_epochs=5",
        "eval.lowlabel_draws=1",
        "eval.random_init_baseline=false",
        "run.log_every=1",
    ]
    out = tmp_path / "study"
    argv = ["study", "--file", str(path), "--root", str(tmp_path / "runs"), "--out", str(out), "--resamples", "50"]
    assert main([*argv, *small]) == 0
    for trial in ("cifar-smoke-000", "cifar-smoke-001"):
        config = yaml.safe_load((tmp_path / "runs" / "cifar-smoke" / trial / "config.yaml").read_text())
        assert config["model"]["backbone"] == "resnet18" and config["optim"]["name"] == "lars"
    accuracy = (out / "results" / "accuracy.md").read_text()
    assert "| vicreg | 1 |" in accuracy and "| adadim | 1 |" in accuracy and "| raw pixels |" in accuracy


def test_a_value_that_needs_another_key_is_checked_beside_the_sweeps_value_of_it(tmp_path):
    # steer.target=run alone is refused (no target run); with the sweep's target_run it is fine
    ok = _sweep_file(
        tmp_path,
        {"method": {"value": "steer"}, "steer.target": {"value": "run"}, "steer.target_run": {"value": "runs/x"}},
    )
    assert load_sweep(str(ok)).name == "tiny"
    bad = _sweep_file(tmp_path, {"method": {"value": "steer"}, "steer.target": {"value": "run"}}, name="bad")
    with pytest.raises(SweepError, match=r"steer\.target_run is required"):
        load_sweep(str(bad))
