"""benchmarks/bench_peer.py's saved pairs: what --save writes, --pool reads back and pools, and
what either refuses. Nothing here trains: the runs are stubbed (lightly is an optional extra)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peer.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peer", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pair(seed: int, lowlabel_diff: float, img_s: float = 101.0, **fields) -> dict:
    """A saved pair whose low-label score is ``lowlabel_diff`` (a fraction) above the peer's and
    whose img/s is ``img_s`` against the peer's 100."""
    peer = {"img_s": 100.0, "lowlabel_top1": 0.40, "knn_top1": 0.60, "linear_top1": 0.64, "steps": 1700}
    ours = {**peer, "img_s": img_s, "lowlabel_top1": 0.40 + lowlabel_diff, "steps": 1750, "seconds": 550.0}
    record = {"config": "cifar10-cpu", "length_key": "optim.max_steps", "length": 1750, "length_given": True}
    record.update(seed=seed, budget=None, overrides=[f"data.root=/machine-{seed}/cifar"], ours=ours, peer=peer)
    record.update(commit="0123456789abcdef", cpu="test CPU", cores=2, torch="2.x", threads=2)
    return {**record, **fields}


def run(bench, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_peer.py", *argv])
    bench.main()


def saved(bench, folder: Path, *records: dict) -> list[str]:
    for record in records:
        bench.save_pair(folder, record)
    return [str(bench.saved_path(folder, record["seed"])) for record in records]


def table(out: str) -> list[str]:
    """The printed rows and tables, without the per-seed title lines and blank lines."""
    return [line for line in out.splitlines() if line.strip() and not line.startswith("seed ")]


@pytest.fixture
def stubbed(bench, monkeypatch):
    """main() with every run stubbed: the trainer scores 0.40 + seed/100 low-label at 110 img/s,
    the loop 0.40 at 100 img/s. Returns the overrides each trainer run was given."""
    calls: list[list[str]] = []

    def trainer(config, overrides, root, run_id):
        calls.append(overrides)
        seed = int(next(o for o in overrides if o.startswith("run.seed=")).split("=")[1])
        scores = {"lowlabel_top1": 0.40 + seed / 100, "knn_top1": 0.6, "linear_top1": 0.64}
        return {**{f"final/{k}": v for k, v in scores.items()}, "trainer/loop_seconds": 256.0, "trainer/step": 110}

    def peer(config, cfg, splits, seconds, seed, loss_class):
        return {"img_s": 100.0, "lowlabel_top1": 0.40, "knn_top1": 0.6, "linear_top1": 0.64, "steps": 100}

    monkeypatch.setattr(bench, "retain_freed_memory", lambda: None)
    monkeypatch.setattr(bench, "require_lightly", lambda: None)
    monkeypatch.setattr(bench, "load_splits", lambda data: SimpleNamespace(ssl_train=range(50_000)))
    monkeypatch.setattr(bench, "score", lambda network, cfg, splits: {k: 0.3 for k in bench.KEYS})
    monkeypatch.setattr(bench, "run_trainer", trainer)
    monkeypatch.setattr(bench, "run_peer", peer)
    return calls


def test_pool_prints_each_pair_and_the_intervals_over_seeds(bench, tmp_path, monkeypatch, capsys):
    # Low-label differences of 1, 2 and 3 points: mean +2, sem 1/sqrt(3), t(0.975, 2) = 4.303,
    # so the interval is 2 -/+ 2.484; img/s ratios 1.01, 1.02, 1.03 give 1.02 -/+ 0.0248. The
    # pairs sit on different machines (data.root differs), given in any order.
    paths = saved(bench, tmp_path, pair(2, 0.03, 103.0), pair(0, 0.01, 101.0), pair(1, 0.02, 102.0))
    run(bench, monkeypatch, "--pool", *paths)
    out = capsys.readouterr().out
    assert out.index("seed 0 (commit 0123456, test CPU, 2 cores)") < out.index("seed 1") < out.index("seed 2")
    assert "torch 2.x, 2 threads; budget each trainer run's seconds; trainer optim.max_steps=1750 (given)" in out
    assert "over 3 seeds" in out
    lowlabel = next(line for line in out.splitlines() if line.startswith("lowlabel_top1"))
    assert lowlabel.split()[2:] == ["+2.00", "[-0.48,", "+4.48]"]
    img_s = next(line for line in out.splitlines() if line.startswith("img_s "))
    assert img_s.split()[1:3] == ["1.020", "+2.00"]
    assert "img_s ratio 1.0200, 95% t interval of the per-seed ratio [0.9952, 1.0448]" in out


def test_saved_pairs_pool_to_what_one_invocation_prints(bench, stubbed, tmp_path, monkeypatch, capsys):
    run(bench, monkeypatch, "--length", "2", "--seed", "0", "1", "2", "--save", str(tmp_path / "pairs"))
    live = capsys.readouterr().out
    assert [o for o in stubbed[0] if o.startswith("optim.epochs")] == ["optim.epochs=2"]
    run(bench, monkeypatch, "--pool", *(str(tmp_path / "pairs" / f"seed-{s}.json") for s in (2, 0, 1)))
    pooled = capsys.readouterr().out
    assert "over 3 seeds" in live and "raw pixels" in live
    assert table(pooled) == table(live)


def test_saved_pairs_from_separate_invocations_pool(bench, stubbed, tmp_path, monkeypatch, capsys):
    # Each on its own machine: the data lies elsewhere on each.
    folder = str(tmp_path / "pairs")
    for seed in ("0", "1"):
        (tmp_path / seed).mkdir()
        location = [f"data.root={tmp_path / seed}", f"data.cache_dir={tmp_path / seed / 'cache'}"]
        run(bench, monkeypatch, "--config", "cifar10-cpu", "--length", "2", "--seed", seed, "--save", folder, *location)
    capsys.readouterr()
    run(bench, monkeypatch, "--pool", f"{folder}/seed-0.json", f"{folder}/seed-1.json")
    lowlabel = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("lowlabel_top1"))
    assert lowlabel.split()[2] == "+0.50"  # the trainer's 0.40 + seed/100 against the loop's 0.40


def test_save_refuses_a_held_seed_before_anything_runs(bench, tmp_path, monkeypatch):
    (held,) = saved(bench, tmp_path, pair(1, 0.01))
    before = Path(held).read_text()
    for name in ("retain_freed_memory", "require_lightly", "load_config", "run_trainer"):
        monkeypatch.setattr(bench, name, lambda *a, name=name: pytest.fail(f"{name} ran"))
    with pytest.raises(SystemExit, match=r"seed-1\.json already saved"):
        run(bench, monkeypatch, "--length", "1", "--seed", "0", "1", "--save", str(tmp_path))
    assert Path(held).read_text() == before


def test_save_refuses_a_folder_it_cannot_make_before_anything_runs(bench, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(bench, "run_trainer", lambda *a: pytest.fail("the trainer ran"))
    with pytest.raises(SystemExit, match="cannot be made a folder"):
        run(bench, monkeypatch, "--length", "1", "--save", str(tmp_path / "a-file" / "pairs"))


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (pair(1, 0.0, length=998), "length 998 differs"),
        (pair(1, 0.0, config="digits"), "config 'digits' differs"),
        (pair(1, 0.0, overrides=["data.root=/x", "optim.lr=0.001"]), "differ from"),
        (pair(0, 0.0), "repeat a seed"),
    ],
)
def test_pool_refuses_pairs_that_do_not_pool(bench, tmp_path, monkeypatch, second, message):
    first = saved(bench, tmp_path / "a", pair(0, 0.01))
    other = saved(bench, tmp_path / "b", second)
    with pytest.raises(SystemExit) as exit_info:
        run(bench, monkeypatch, "--pool", *first, *other)
    assert message in str(exit_info.value)
    assert "\n" not in str(exit_info.value)


def damaged(**fields) -> str:
    record = pair(1, 0.0)
    for field, value in fields.items():
        system, _, key = field.partition("__")
        if key:
            record[system] = {**record[system], key: value}
        else:
            record[system] = value
    return json.dumps(record)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable saved pair"),
        ("[1, 2]", "a JSON list, not an object"),
        (json.dumps({"config": "cifar10-cpu"}), "missing length_key"),
        (damaged(peer__knn_top1=math.nan), "peer.knn_top1 is nan"),
        (damaged(ours__img_s=0), "ours.img_s is 0"),
        (damaged(ours__img_s=10**400), "ours.img_s is 1000"),
        (damaged(ours=[0.4]), "ours is [0.4], not an object"),
        (damaged(ours__steps=17.5), "ours.steps is 17.5"),
        (damaged(raw={"knn_top1": 0.4}), "raw.lowlabel_top1 is None"),
        (damaged(seed="1"), "seed is '1', not an integer"),
        (damaged(length="1750"), "length is '1750'"),
        (damaged(overrides="x=1"), "overrides is 'x=1'"),
        (damaged(budget="300"), "budget is '300'"),
    ],
)
def test_pool_names_a_damaged_file(bench, tmp_path, monkeypatch, content, message):
    good = saved(bench, tmp_path, pair(0, 0.01))
    path = tmp_path / "seed-1.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        run(bench, monkeypatch, "--pool", *good, str(path))
    assert str(path) in str(exit_info.value) and message in str(exit_info.value)
    assert "\n" not in str(exit_info.value)


def test_pool_names_a_folder_given_as_a_file(bench, tmp_path, monkeypatch):
    good = saved(bench, tmp_path / "pairs", pair(0, 0.01))
    with pytest.raises(SystemExit, match="not a readable saved pair"):
        run(bench, monkeypatch, "--pool", *good, str(tmp_path / "pairs"))


def test_pool_needs_two_pairs(bench, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="at least two"):
        run(bench, monkeypatch, "--pool", *saved(bench, tmp_path, pair(0, 0.01)))


@pytest.mark.parametrize(
    "option",
    [["--seed", "3"], ["--config", "digits"], ["--budget", "1"], ["--length", "1"], ["--save", "x"], ["data.root=x"]],
)
def test_pool_refuses_options_that_would_have_no_effect(bench, tmp_path, monkeypatch, capsys, option):
    paths = saved(bench, tmp_path, pair(0, 0.01), pair(1, 0.02))
    argv = [*option, "--pool", *paths] if option[0].startswith("--") else ["--pool", *paths, "--", *option]
    with pytest.raises(SystemExit) as exit_info:
        run(bench, monkeypatch, *argv)
    assert exit_info.value.code == 2
    assert f"{option[0]} would have no effect" in capsys.readouterr().err
