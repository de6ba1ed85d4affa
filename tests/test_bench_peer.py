"""benchmarks/bench_peer.py's saved pairs: what --save writes, --pool reads back and pools, and
what either refuses. Nothing here trains (lightly is an optional extra)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peer.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peer", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pair(seed: int, lowlabel_diff: float, **fields) -> dict:
    """A saved pair whose low-label score is ``lowlabel_diff`` (a fraction) above the peer's."""
    peer = {"img_s": 800.0, "lowlabel_top1": 0.40, "knn_top1": 0.60, "linear_top1": 0.64, "steps": 1700}
    ours = {**peer, "img_s": 820.0, "lowlabel_top1": 0.40 + lowlabel_diff, "steps": 1750, "seconds": 550.0}
    record = {"config": "cifar10-cpu", "length_key": "optim.max_steps", "length": 1750, "length_given": True}
    record.update(seed=seed, budget=None, overrides=[f"data.root=/machine-{seed}/cifar"], ours=ours, peer=peer)
    record.update(commit="0123456789abcdef", cpu="test CPU", cores=2, torch="2.x", threads=2)
    return {**record, **fields}


def run(bench, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_peer.py", *argv])
    bench.main()


def saved(bench, tmp_path: Path, *records: dict) -> list[str]:
    for record in records:
        bench.save_pair(tmp_path, record)
    return [str(bench.saved_path(tmp_path, record["seed"])) for record in records]


def test_pool_prints_each_pair_and_the_interval_over_seeds(bench, tmp_path, monkeypatch, capsys):
    # Low-label differences of 1, 2 and 3 points: mean +2, sem 1/sqrt(3), t(0.975, 2) = 4.303,
    # so the interval is 2 -/+ 2.484. The pairs sit on different machines (data.root differs).
    paths = saved(bench, tmp_path, pair(2, 0.03), pair(0, 0.01), pair(1, 0.02))
    run(bench, monkeypatch, "--pool", *paths)
    out = capsys.readouterr().out
    assert out.index("seed 0 (commit 0123456") < out.index("seed 1") < out.index("seed 2")
    assert "trainer optim.max_steps=1750 (given)" in out
    assert "over 3 seeds" in out
    lowlabel = next(line for line in out.splitlines() if line.startswith("lowlabel_top1"))
    assert lowlabel.split()[2:] == ["+2.00", "[-0.48,", "+4.48]"]
    img_s = next(line for line in out.splitlines() if line.startswith("img_s"))
    assert img_s.split()[1:3] == ["1.025", "+20.00"]


def test_saved_pair_round_trips(bench, tmp_path):
    record = pair(5, 0.004)
    bench.save_pair(tmp_path / "new", record)
    assert bench.read_pair(bench.saved_path(tmp_path / "new", 5)) == record


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (pair(1, 0.0, length=998), "length 998 differs"),
        (pair(1, 0.0, config="digits"), "config 'digits' differs"),
        (pair(1, 0.0, overrides=["data.root=/x", "optim.lr=0.001"]), "overrides"),
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


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a readable saved pair"),
        (json.dumps({"config": "cifar10-cpu"}), "missing length_key"),
        (json.dumps({**pair(1, 0.0), "peer": {**pair(1, 0.0)["peer"], "knn_top1": math.nan}}), "peer.knn_top1"),
        (json.dumps({**pair(1, 0.0), "ours": {**pair(1, 0.0)["ours"], "img_s": 0}}), "ours.img_s is 0"),
    ],
)
def test_pool_names_a_damaged_file(bench, tmp_path, monkeypatch, content, message):
    good = saved(bench, tmp_path, pair(0, 0.01))
    damaged = tmp_path / "seed-1.json"
    damaged.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        run(bench, monkeypatch, "--pool", *good, str(damaged))
    assert str(damaged) in str(exit_info.value) and message in str(exit_info.value)


def test_pool_needs_two_pairs(bench, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="at least two"):
        run(bench, monkeypatch, "--pool", *saved(bench, tmp_path, pair(0, 0.01)))


def test_pool_refuses_options_that_would_have_no_effect(bench, tmp_path, monkeypatch, capsys):
    paths = saved(bench, tmp_path, pair(0, 0.01), pair(1, 0.02))
    with pytest.raises(SystemExit) as exit_info:
        run(bench, monkeypatch, "--seed", "3", "--pool", *paths)
    assert exit_info.value.code == 2
    assert "--seed would have no effect" in capsys.readouterr().err


def test_save_refuses_a_held_seed_before_training(bench, tmp_path, monkeypatch):
    (held,) = saved(bench, tmp_path, pair(1, 0.01))
    before = Path(held).read_text()
    with pytest.raises(SystemExit, match=r"seed-1\.json already saved"):
        run(bench, monkeypatch, "--length", "1", "--seed", "0", "1", "--save", str(tmp_path))
    assert Path(held).read_text() == before


def test_pool_refuses_a_malformed_seed_or_overrides(bench, tmp_path, monkeypatch):
    good = saved(bench, tmp_path, pair(0, 0.01))
    for name, fields, message in [("a", {"seed": "1"}, "seed is '1'"), ("b", {"overrides": "x=1"}, "overrides is")]:
        damaged = tmp_path / f"{name}.json"
        damaged.write_text(json.dumps({**pair(1, 0.0), **fields}))
        with pytest.raises(SystemExit, match=message):
            run(bench, monkeypatch, "--pool", *good, str(damaged))
