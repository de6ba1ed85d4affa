import json
import math
import os
import time

import numpy as np
import pandas as pd
import pytest
import wandb
from adadim.analysis import load_runs, loading
from adadim.analysis.loading import run_from_api
from adadim.analysis.report import AnalysisOptions, analyze
from adadim.analysis.studies import (
    MIXED,
    NAIVE,
    correlate,
    coupling,
    equilibrium,
    optimum,
    ratio_accuracy,
    trajectories,
)
from adadim.cli import main
from adadim.training.config import load_config
from adadim.training.trainer import train
from analysis_helpers import constant, planted_rows, write_run
from trainer_helpers import tiny_overrides

FAST = {"n_resamples": 300}


# ---- planted answers ---------------------------------------------------------------------


def _runs_with_equilibria(tmp_path, xs, accuracies, groups=None):
    for k, (x, acc) in enumerate(zip(xs, accuracies, strict=True)):
        config = {"method": (groups[k] if groups else "adadim"), "run": {"seed": k}}
        write_run(
            tmp_path, f"r{k:02d}", planted_rows(50, constant(x), constant(1.0)), {"final/lowlabel_top1": acc}, config
        )
    return load_runs(tmp_path, progress=False)


def test_planted_correlation_is_recovered_with_honest_intervals(tmp_path):
    rng = np.random.default_rng(0)
    ratio = rng.uniform(1, 3, 24)
    accuracy = 0.5 + 0.1 * ratio + rng.normal(0, 0.02, 24)
    groups = ["a" if k % 2 else "b" for k in range(24)]
    rs = _runs_with_equilibria(tmp_path, ratio, accuracy, groups)
    table = ratio_accuracy(rs, **FAST)
    assert (table["p_holm"] >= table["p_value"]).all()
    table = table.set_index(["scope", "statistic"])
    for method in ("pearson", "spearman", "kendall"):
        row = table.loc[(NAIVE, method)]
        assert row["n"] == 24
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert row["ci_low"] > 0.5 and row["p_value"] < 0.01
    pearson = table.loc[(NAIVE, "pearson")]
    assert pearson["estimate"] == pytest.approx(np.corrcoef(ratio, accuracy)[0, 1], abs=1e-9)
    slope = table.loc[(MIXED, "slope")]
    assert slope["ci_low"] < 0.1 < slope["ci_high"] and slope["p_value"] < 0.01
    assert table.loc[("within groups", "pearson"), "p_value"] < 0.01
    assert set(table.index.get_level_values("scope")) == {NAIVE, MIXED, "within groups", "group a", "group b"}


def test_no_correlation_gives_an_interval_around_zero(tmp_path):
    rng = np.random.default_rng(1)
    rs = _runs_with_equilibria(tmp_path, rng.uniform(1, 3, 30), rng.uniform(0.8, 0.9, 30))
    row = ratio_accuracy(rs, **FAST).set_index(["scope", "statistic"]).loc[(NAIVE, "spearman")]
    assert row["ci_low"] < 0 < row["ci_high"] and row["p_value"] > 0.05


def test_planted_interior_optimum(tmp_path):
    rng = np.random.default_rng(2)
    h = np.linspace(1.0, 3.0, 21)
    accuracy = 0.95 - 0.1 * (h - 2.2) ** 2 + rng.normal(0, 0.002, h.size)
    rs = _runs_with_equilibria(tmp_path, h, accuracy)
    fits = optimum(rs, xs=("dynamics/H_R",)).set_index("scope")
    fit = fits.loc[MIXED]
    assert fit["interior_optimum"] and fit["b1"] > 0 > fit["b2"] and fit["p_holm"] < 1e-3
    assert 1.8 < fit["breakpoint"] < 2.6 and fit["b1_ci_low"] > 0 and fit["b2_ci_high"] < 0
    # The parabola stays as a description: its vertex sits at the planted peak.
    assert fit["quadratic_vertex"] == pytest.approx(2.2, abs=0.05) and fit["quadratic_r2"] > 0.95
    # A monotone relation: no interior optimum.
    monotone = _runs_with_equilibria(tmp_path / "m", h, 0.5 + 0.1 * h + rng.normal(0, 0.002, h.size))
    assert not optimum(monotone, xs=("dynamics/H_R",))["interior_optimum"].any()


def test_planted_coupling_early_positive_late_negative(tmp_path):
    def h(t):
        return np.sin(12 * t) + 3 * t

    def i(t):
        # early: I moves with H; late: against it
        return np.where(t <= 0.5, np.sin(12 * t), -np.sin(12 * t) + 2 * np.sin(6.0))

    def with_noise(f, noise):
        return lambda t: f(t) + noise[round(t * 199)]

    rng = np.random.default_rng(4)
    for k in range(3):  # the same planted curves, each run with its own small measurement noise
        write_run(tmp_path, f"c{k}", planted_rows(200, h, with_noise(i, rng.normal(0, 0.02, 200)), every=2))
    rs = load_runs(tmp_path, progress=False)
    table = coupling(rs, early=(0, 0.4), late=(0.6, 1.0), i="dynamics/I_RZ")
    assert table["p_value"].notna().sum() >= 10 and (table["p_holm"] >= table["p_value"]).all()
    table = table.set_index(["quantity", "scope"])
    early, late = table.loc[("early", MIXED)], table.loc[("late", MIXED)]
    assert early["estimate"] > 0.9 and early["ci_low"] > 0.5
    assert late["estimate"] < -0.5 and late["ci_high"] < 0
    assert table.loc[("early - late", MIXED), "ci_low"] > 0


def test_equilibrium_flags_runs_that_have_not_settled(tmp_path):
    write_run(tmp_path, "flat", planted_rows(100, constant(2.0), constant(1.0)))
    write_run(tmp_path, "rising", planted_rows(100, lambda t: 1 + 2 * t, constant(1.0)))
    eq = equilibrium(load_runs(tmp_path, progress=False), ["dynamics/H_R"], window=0.2)
    assert eq.loc["flat", "dynamics/H_R"] == pytest.approx(2.0)
    assert bool(eq.loc["flat", "dynamics/H_R:settled"]) and not bool(eq.loc["rising", "dynamics/H_R:settled"])
    # The equilibrium is the mean over the last 20% of logged points.
    assert eq.loc["rising", "dynamics/H_R"] == pytest.approx(np.mean(1 + 2 * np.arange(80, 100) / 99))


def test_trajectory_bands_are_t_intervals_across_seeds(tmp_path):
    for k, offset in enumerate((0.0, 0.1, 0.2)):
        write_run(tmp_path, f"s{k}", planted_rows(10, lambda t, o=offset: 1 + t + o, constant(1.0)))
    traj = trajectories(load_runs(tmp_path, progress=False), ["dynamics/H_R"])
    first = traj[traj["x"] == 0].iloc[0]
    values = np.array([1.0, 1.1, 1.2])
    half = 4.302652729911275 * values.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert first["mean"] == pytest.approx(1.1) and first["n"] == 3
    assert first["ci_low"] == pytest.approx(1.1 - half) and first["ci_high"] == pytest.approx(1.1 + half)
    normalized = trajectories(load_runs(tmp_path, progress=False), ["dynamics/H_R"], normalize=True)
    assert normalized.iloc[0]["mean"] == pytest.approx(1.1 / math.log(512))


def test_the_trajectories_figure_draws_the_steer_setpoint_over_the_ratio(tmp_path, monkeypatch):
    from adadim.analysis import plots

    ratio, setpoint = "dynamics/ratio_H_I", "steer/setpoint"
    rows = planted_rows(
        40, lambda t: 2 + t, constant(1.0), every=4, extra=lambda s, t: {setpoint: 2.5} if s % 4 == 0 else {}
    )
    write_run(tmp_path / "runs", "steered", rows, config={"method": "steer", "run": {"seed": 0}})
    traj = trajectories(load_runs(tmp_path / "runs", progress=False, cache_dir=None), [ratio, setpoint, "dynamics/H_R"])
    assert set(traj["metric"]) == {ratio, setpoint, "dynamics/H_R"}
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out, name: saved.setdefault("fig", fig))
    plots.plot_trajectories(traj, tmp_path / "figures")
    axes = [ax for ax in saved["fig"].axes if ax.get_visible()]
    by_label = {ax.get_ylabel(): ax for ax in axes}
    assert set(by_label) == {plots.label(ratio), plots.label("dynamics/H_R")}  # no panel of its own
    ratio_axis = by_label[plots.label(ratio)]
    dashed = [line for line in ratio_axis.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {2.5}
    assert dashed[0].get_color() == ratio_axis.get_lines()[0].get_color()  # the group's colour
    assert not [line for line in by_label[plots.label("dynamics/H_R")].get_lines() if line.get_linestyle() == "--"]


def test_a_group_keeps_its_colour_on_panels_where_another_group_is_missing(tmp_path, monkeypatch):
    """BYOL logs no α: the α panel has one group fewer, and the others must keep their colours."""
    from adadim.analysis import plots
    from matplotlib.colors import to_hex

    alpha = planted_rows(40, constant(1.0), constant(0.5), every=4)
    rows = [{k: v for k, v in r.items() if k != "adadim/alpha"} for r in alpha]
    write_run(tmp_path / "runs", "a", rows, config={"method": "byol", "run": {"seed": 0}})
    write_run(tmp_path / "runs", "b", alpha, config={"method": "fixed", "run": {"seed": 0}})
    write_run(tmp_path / "runs", "c", alpha, config={"method": "vicreg", "run": {"seed": 0}})
    traj = trajectories(load_runs(tmp_path / "runs", progress=False, cache_dir=None), ["adadim/alpha", "dynamics/H_R"])
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out, name: saved.setdefault("fig", fig))
    plots.plot_trajectories(traj, tmp_path / "figures")
    fig = saved["fig"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    colour = [{line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()} for ax in panels]
    assert sorted(len(c) for c in colour) == [2, 3]
    full, short = sorted(colour, key=len, reverse=True)
    assert all(full[group] == short[group] for group in short)
    entries = zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles, strict=True)
    legend = {text.get_text(): to_hex(handle.get_color()) for text, handle in entries}
    assert legend == full


def test_more_groups_than_the_palette_still_get_distinct_colours(tmp_path, monkeypatch):
    from adadim.analysis import plots
    from matplotlib.colors import to_hex

    rows = planted_rows(12, constant(1.0), constant(0.5), every=4)
    for k in range(12):
        write_run(tmp_path / "runs", f"r{k}", rows, config={"method": f"m{k:02d}", "run": {"seed": 0}})
    traj = trajectories(load_runs(tmp_path / "runs", progress=False, cache_dir=None), ["dynamics/H_R"])
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out, name: saved.setdefault("fig", fig))
    plots.plot_trajectories(traj, tmp_path / "figures")
    lines = [line for ax in saved["fig"].axes for line in ax.get_lines()]
    assert len(lines) == 12 and len({to_hex(line.get_color()) for line in lines}) == 12


# ---- loading: bad runs, caching, W&B -------------------------------------------------------


def test_bad_runs_are_skipped_with_a_reason_and_the_rest_load(tmp_path, capsys):
    good = planted_rows(20, constant(1.0), constant(0.5))
    write_run(tmp_path, "good", good)
    write_run(tmp_path, "crashed", good, {"state": "crashed"})
    write_run(tmp_path, "partial", good, {"state": "running"})
    write_run(tmp_path, "nan", [*good[:5], {**good[5], "train/loss": None}, *good[6:]])
    write_run(tmp_path, "nokeys", [{"trainer/step": s, "other": 1.0} for s in range(5)])
    write_run(tmp_path, "empty", [])
    corrupt = write_run(tmp_path, "corrupt", good)
    lines = (corrupt / "history.jsonl").read_text().splitlines()
    lines[3] = lines[3][:15]
    (corrupt / "history.jsonl").write_text("\n".join(lines) + "\n")
    badyaml = write_run(tmp_path, "badyaml", good)
    (badyaml / "config.yaml").write_text("method: [unclosed\n")
    torn = write_run(tmp_path, "torn", good)
    with (torn / "history.jsonl").open("a") as f:
        f.write('{"trainer/step": 20, "train/lo')  # a crash mid-row: dropped, the run loads

    rs = load_runs(tmp_path, progress=False)
    assert sorted(rs.runs.index) == ["good", "torn"]
    reasons = dict(rs.skipped)
    assert "crashed" in reasons["crashed"] and "running" in reasons["partial"]
    assert "NaN or Inf train/loss at step 5" in reasons["nan"]
    assert "lacks train/loss" in reasons["nokeys"]
    assert "empty history" in reasons["empty"]
    assert "line 4 is corrupt" in reasons["corrupt"]
    assert "unreadable" in reasons["badyaml"]
    err = capsys.readouterr().err
    assert err.count("adadim: skipped run") == 7
    assert len(rs.history[rs.history["run_id"] == "torn"]) == 20
    assert "partial" in load_runs(tmp_path, include_unfinished=True, progress=False).runs.index


def test_cache_reloads_only_what_changed(tmp_path, monkeypatch):
    for k in range(3):
        write_run(tmp_path, f"r{k}", planted_rows(30, constant(1.0 + k), constant(0.5)))
    first = load_runs(tmp_path, progress=False)
    calls = []
    original = loading.parse_local_run
    monkeypatch.setattr(loading, "parse_local_run", lambda d: calls.append(d.name) or original(d))
    again = load_runs(tmp_path, progress=False)
    assert calls == []
    pd.testing.assert_frame_equal(first.history, again.history)
    with (tmp_path / "r1" / "history.jsonl").open("a") as f:
        f.write(json.dumps({"trainer/step": 30, "train/loss": 0.1}) + "\n")
    os.utime(tmp_path / "r1" / "history.jsonl", ns=(1, 10**18))
    changed = load_runs(tmp_path, progress=False)
    assert calls == ["r1"]
    assert changed.history.groupby("run_id").size().to_dict() == {"r0": 30, "r1": 31, "r2": 30}
    assert (tmp_path / ".adadim-cache" / "manifest.json").is_file()


def _csv_log(folder):
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,train/loss\n0,1.0\n1,0.5\n")
    return folder


def test_one_bounded_walk_finds_csv_logs_down_to_the_depth_limit(tmp_path):
    from adadim.analysis.discovery import MAX_DEPTH, walk

    within = _csv_log(tmp_path.joinpath(*[f"d{k}" for k in range(1, MAX_DEPTH + 1)]))
    _csv_log(tmp_path.joinpath("deep", *[f"d{k}" for k in range(1, MAX_DEPTH + 1)]))  # one folder too deep
    shallow = _csv_log(tmp_path / "logs" / "seed0" / "version_0")  # Lightning's layout, under logs/
    _csv_log(tmp_path / ".git" / "x" / "version_0")  # hidden folders are not walked
    assert walk(tmp_path).csv_logs == sorted([within, shallow])
    loaded = load_runs(tmp_path, cache_dir=None, progress=False)
    assert sorted(loaded.runs.index) == sorted([f"d{MAX_DEPTH - 1}-d{MAX_DEPTH}", "seed0-version_0"])


def test_the_walk_ends_in_a_loop_of_linked_folders(tmp_path):
    import threading

    from adadim.analysis.discovery import walk

    log = _csv_log(tmp_path / "src" / "name" / "version_0")
    (tmp_path / "src" / "name" / "up").symlink_to(tmp_path / "src", target_is_directory=True)
    (tmp_path / "src" / "again").symlink_to(tmp_path / "src", target_is_directory=True)
    result: list = []
    walker = threading.Thread(target=lambda: result.append(walk(tmp_path / "src")), daemon=True)
    walker.start()
    walker.join(timeout=60)
    assert result, "the walk did not end"
    assert log in result[0].csv_logs and result[0].runs == []


def test_cache_sees_a_history_rewritten_with_its_old_size_and_time(tmp_path):
    write_run(tmp_path, "r0", planted_rows(30, constant(1.0), constant(0.5)))
    path = tmp_path / "r0" / "history.jsonl"
    before = load_runs(tmp_path, progress=False).history["dynamics/H_R"].to_numpy()
    stat = path.stat()
    text = path.read_text()
    edited = text.replace('"dynamics/H_R": 1.0', '"dynamics/H_R": 2.0')
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = load_runs(tmp_path, progress=False).history["dynamics/H_R"].to_numpy()
    assert np.allclose(before, 1.0) and np.allclose(after, 2.0)


def _settled_source(tmp_path, monkeypatch):
    """One run loaded once, whose file times settle at once (no racy window), and a counter of
    the content digests taken from then on."""
    from adadim.analysis import run_cache

    monkeypatch.setattr(run_cache, "RACY_NS", 0)
    write_run(tmp_path, "r0", planted_rows(30, constant(1.0), constant(0.5)))
    time.sleep(0.05)  # past the file system's timestamp tick
    load_runs(tmp_path, progress=False)
    digests: list = []
    original = run_cache._digest
    monkeypatch.setattr(run_cache, "_digest", lambda path: digests.append(path.name) or original(path))
    return tmp_path / "r0" / "history.jsonl", digests


def test_a_cache_hit_with_settled_times_reads_no_source_file(tmp_path, monkeypatch):
    path, digests = _settled_source(tmp_path, monkeypatch)
    calls = []
    original = loading.parse_local_run
    monkeypatch.setattr(loading, "parse_local_run", lambda d: calls.append(d.name) or original(d))
    load_runs(tmp_path, progress=False)
    assert digests == [] and calls == []
    # New times, the same bytes (a touch, a restore that keeps mtimes): compared by content, kept
    os.utime(path, ns=(1, 10**18))
    load_runs(tmp_path, progress=False)
    assert "history.jsonl" in digests and calls == []
    digests.clear()
    load_runs(tmp_path, progress=False)  # the entry took the new times
    assert digests == [] and calls == []


def test_files_changed_just_before_their_check_are_compared_by_content(tmp_path, monkeypatch):
    """A file may change again within one timestamp tick of its digest (git's racy-clean case):
    while its times are that young, a reload compares contents instead of trusting them."""
    from adadim.analysis import run_cache

    monkeypatch.setattr(run_cache, "RACY_NS", 10**15)  # however slow the machine, the files are young
    write_run(tmp_path, "r0", planted_rows(30, constant(1.0), constant(0.5)))
    load_runs(tmp_path, progress=False)
    digests: list = []
    original = run_cache._digest
    monkeypatch.setattr(run_cache, "_digest", lambda path: digests.append(path.name) or original(path))
    load_runs(tmp_path, progress=False)
    assert sorted(digests) == ["config.yaml", "history.jsonl", "summary.json"]


def test_a_settled_cache_sees_a_history_rewritten_with_its_old_size_and_time(tmp_path, monkeypatch):
    path, _ = _settled_source(tmp_path, monkeypatch)
    stat, text = path.stat(), path.read_text()
    edited = text.replace('"dynamics/H_R": 1.0', '"dynamics/H_R": 2.0')
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the ctime moves on: it cannot be set back
    assert np.allclose(load_runs(tmp_path, progress=False).history["dynamics/H_R"].to_numpy(), 2.0)


def test_any_failure_of_one_run_is_a_skip_with_its_reason(tmp_path, capsys):
    good = planted_rows(20, constant(1.0), constant(0.5))
    write_run(tmp_path, "good", good)
    binary = write_run(tmp_path, "binary", good)
    (binary / "history.jsonl").write_bytes(bytes(range(256)) * 8)
    listcfg = write_run(tmp_path, "listcfg", good)
    (listcfg / "config.yaml").write_text("- 1\n- 2\n")
    strsum = write_run(tmp_path, "strsum", good)
    (strsum / "summary.json").write_text('"finished"')
    notrow = write_run(tmp_path, "notrow", good)
    (notrow / "history.jsonl").write_text('{"trainer/step": 0, "train/loss": 1}\n[1, 2]\n{"trainer/step": 1}\n')
    write_run(tmp_path, "trips", good)

    def trips_a_bug(meta):  # whatever a user's filter raises skips that run only
        if meta["run_id"] == "trips":
            raise RuntimeError("boom\nsecond line")
        return True

    rs = load_runs(tmp_path, filters=trips_a_bug, progress=False, cache_dir=None)
    assert list(rs.runs.index) == ["good"]
    reasons = dict(rs.skipped)
    assert reasons["binary"].startswith("history.jsonl is not UTF-8 text")
    assert reasons["listcfg"] == "config.yaml holds a list, not a mapping"
    assert reasons["strsum"] == "summary.json holds a str, not a mapping"
    assert reasons["notrow"] == "history.jsonl line 2 is not a JSON object"
    assert reasons["trips"] == "cannot be read: RuntimeError: boom"
    assert len(capsys.readouterr().err.strip().splitlines()) == 5  # one line each


def test_a_run_is_known_by_its_own_id_and_copies_are_resolved_by_a_fixed_rule(tmp_path, capsys):
    rows = planted_rows(20, constant(1.0), constant(0.5))
    # Renamed: the folder differs from summary.run_id; the id comes from the run's files.
    write_run(tmp_path / "a", "renamed-folder", rows, {"run_id": "orig", "final/lowlabel_top1": 0.7})
    rs = load_runs(tmp_path / "a", progress=False, cache_dir=None)
    assert list(rs.runs.index) == ["orig"] and set(rs.history["run_id"]) == {"orig"}
    assert len(trajectories(rs, ["dynamics/H_R"], by="group")) == 20
    # config.yaml's run.id when the summary has none; the folder name when neither has one.
    write_run(tmp_path / "b", "folder", rows, config={"method": "adadim", "run": {"id": "from-config"}})
    write_run(tmp_path / "b", "plain", rows)
    assert sorted(load_runs(tmp_path / "b", progress=False, cache_dir=None).runs.index) == ["from-config", "plain"]

    # Copies: the folder named after the id wins, else the longest history, else the first path.
    def copies(root, folders_and_steps):
        for folder, steps in folders_and_steps:
            write_run(root, folder, planted_rows(steps, constant(1.0), constant(0.5)), {"run_id": "x"})
        return load_runs(root, progress=False, cache_dir=None)

    for root, layout, kept in [
        ("c1", [("x", 10), ("x-copy", 30)], "x"),
        ("c2", [("copy-a", 10), ("copy-b", 30)], "copy-b"),
        ("c3", [("copy-b", 20), ("copy-a", 20)], "copy-a"),
    ]:
        rs = copies(tmp_path / root, layout)
        assert list(rs.runs.index) == ["x"] and rs.runs.loc["x", "source"].endswith(f"/{kept}"), root
        assert len(rs.history) == dict(layout)[kept]
        dropped = [folder for folder, _ in layout if folder != kept]
        assert [k for k, _ in rs.skipped] == dropped
        assert f"duplicate of run 'x', also in {tmp_path / root / kept}, which is kept" in rs.skipped[0][1]


def test_cache_folder_can_be_chosen_or_switched_off(tmp_path, monkeypatch, capsys):
    source = tmp_path / "runs"
    write_run(source, "r0", planted_rows(10, constant(1.0), constant(0.5)))
    load_runs(source, progress=False, cache_dir=tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "manifest.json").is_file() and not (source / ".adadim-cache").exists()
    load_runs(source, progress=False, cache_dir=None)
    assert not (source / ".adadim-cache").exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="cannot use the cache folder"):
        load_runs(source, progress=False, cache_dir=tmp_path / "a-file" / "cache")
    # A cache written by an older version (runs keyed by folder name) is not trusted.
    (source / ".adadim-cache").mkdir()
    (source / ".adadim-cache" / "manifest.json").write_text(
        json.dumps({"version": 1, "runs": {"r0": {"signature": [], "meta": {"run_id": "stale"}, "bad": None}}})
    )
    assert list(load_runs(source, progress=False).runs.index) == ["r0"]
    # The source cannot hold a cache: the user cache does, with a note.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    blocker = tmp_path / "ro-source"
    write_run(blocker, "r1", planted_rows(10, constant(1.0), constant(0.5)))
    (blocker / ".adadim-cache").write_text("a file where the cache folder would go")
    capsys.readouterr()
    rs = load_runs(blocker, progress=False)
    assert list(rs.runs.index) == ["r1"]
    err = capsys.readouterr().err
    assert f"cannot write the cache in {blocker / '.adadim-cache'}" in err and "the cache is in" in err
    assert len(list((tmp_path / "xdg" / "adadim" / "local").glob("ro-source-*/manifest.json"))) == 1


@pytest.mark.slow
def test_reads_wandb_offline_files_from_the_trainer_and_from_other_code(tmp_path):
    summary = train(
        load_config(
            None, tiny_overrides(tmp_path / "runs", "wb-analysis", **{"wandb.mode": "offline", "optim.epochs": 1})
        )
    )
    from_wandb = load_runs(tmp_path / "runs" / "wb-analysis" / "wandb", progress=False, cache_dir=None)
    from_local = load_runs(tmp_path / "runs" / "wb-analysis", progress=False, cache_dir=None)
    assert list(from_wandb.runs.index) == ["wb-analysis"]
    assert from_wandb.runs.loc["wb-analysis", "final/lowlabel_top1"] == pytest.approx(summary["final/lowlabel_top1"])
    assert from_wandb.runs.loc["wb-analysis", "optim.lr"] == 0.5
    local, remote = from_local.history.set_index("trainer/step"), from_wandb.history.set_index("trainer/step")
    for column in ("train/loss", "dynamics/H_R", "adadim/alpha"):
        pd.testing.assert_series_equal(local[column], remote[column], check_dtype=False)

    # A run written by any code with the wandb client (no trainer/step: W&B's _step is used).
    other = tmp_path / "other"
    run = wandb.init(project="p", id="plain1", dir=str(other), mode="offline", config={"lr": {"base": 0.1}})
    for s in range(4):
        run.log({"train/loss": 1.0 / (s + 1), "acc": s / 4})
    run.finish()
    rs = load_runs(other / "wandb", progress=False, cache_dir=None)
    assert rs.runs.loc["plain1", "lr.base"] == 0.1
    assert rs.history["trainer/step"].tolist() == [0, 1, 2, 3]

    files = list((other / "wandb").glob("offline-run-*/run-plain1.wandb"))
    data = bytearray(files[0].read_bytes())
    data[40:60] = b"\x00" * 20
    files[0].write_bytes(bytes(data))
    broken = load_runs(other / "wandb", progress=False, cache_dir=None)
    assert len(broken) == 0 and "checksum" in broken.skipped[0][1]


class FakeSummary:
    def __init__(self, values):
        self._json_dict = values


class FakeApiRun:
    """The attributes of wandb.apis.public.Run that the loader reads (no server here)."""

    def __init__(self, run_id, rows, state="finished"):
        self.id, self.path, self.state, self.group = run_id, ["e", "p", run_id], state, "g1"
        self.config = {"method": {"value": "adadim", "desc": None}, "optim.lr": 0.3, "_wandb": {}}
        self.summary = FakeSummary({"final/lowlabel_top1": 0.9, "_runtime": 3})
        self.lastHistoryStep, self.heartbeatAt = len(rows) - 1, "2026-01-01T00:00:00"
        self._rows = rows

    def scan_history(self):
        return iter(self._rows)


class FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return self._runs


def test_wandb_api_conversion_at_the_boundary(tmp_path):
    rows = [{"_step": s, "trainer/step": s, "train/loss": 1.0 - s / 10, "_runtime": s} for s in range(5)]
    meta, history = run_from_api(FakeApiRun("abc", rows))
    assert meta["method"] == "adadim" and meta["optim.lr"] == 0.3 and meta["group"] == "g1"
    assert "_wandb" not in meta and "_runtime" not in meta and meta["final/lowlabel_top1"] == 0.9
    assert history["trainer/step"].tolist() == list(range(5)) and "_runtime" not in history
    api = FakeApi([FakeApiRun("abc", rows), FakeApiRun("def", rows, state="crashed")])
    rs = load_runs("entity/project", filters={"config.method": "adadim"}, api=api, cache_dir=tmp_path, progress=False)
    assert api.calls == [("entity/project", {"config.method": "adadim"})]
    assert list(rs.runs.index) == ["abc"] and "crashed" in dict(rs.skipped)["def"]


# ---- the whole analysis on real trainer runs -------------------------------------------------


@pytest.mark.slow
def test_analyze_real_trainer_runs_end_to_end(tmp_path):
    for method in ("vicreg", "simclr"):
        for seed in (0, 1):
            overrides = tiny_overrides(
                tmp_path / "runs", f"{method}-{seed}", method=method, **{"run.seed": seed, "optim.epochs": 2}
            )
            train(load_config(None, overrides))
    out = tmp_path / "out"
    result = analyze(tmp_path / "runs", out, AnalysisOptions(n_resamples=200, progress=False))
    for name in ("trajectories", "information_plane", "ratio_accuracy", "optimum", "coupling"):
        for ext in ("pdf", "png"):
            path = out / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    for name in ("claims", "equilibrium", "accuracy_table", "ratio_accuracy", "optimum", "coupling"):
        for ext in ("csv", "md", "tex"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("trajectories", "information_plane"):
        assert (out / "tables" / f"{name}.csv").stat().st_size > 0
    # The data behind each figure is the table written beside it.
    pd.testing.assert_frame_equal(result.figures["trajectories"], result.tables["trajectories"])
    written = pd.read_csv(out / "tables" / "trajectories.csv")
    np.testing.assert_allclose(written["mean"], result.tables["trajectories"]["mean"])
    eq = result.tables["equilibrium"].set_index("run_id")
    np.testing.assert_allclose(
        result.figures["ratio_accuracy"]["x"].sort_index(), eq["dynamics/ratio_H_I"].sort_index()
    )
    accuracy = pd.read_csv(out / "tables" / "accuracy_table.csv").set_index("group")
    assert set(accuracy.index) == {"vicreg", "simclr"} and (accuracy["n"] == 2).all()
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "vicreg-0" in page and "<script" not in page


def test_analyze_command_refuses_bad_input(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no runs at" in capsys.readouterr().err
    write_run(tmp_path / "runs", "r0", planted_rows(20, constant(1.0), constant(0.5)))
    assert main(["analyze", str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--studies", "bogus"]) == 2
    assert "unknown studies" in capsys.readouterr().err
    code = main(["analyze", str(tmp_path / "runs"), "--out", str(tmp_path / "o"), "--studies", "ratio_accuracy"])
    assert code == 0
    assert "no accuracy key 'final/lowlabel_top1'" in capsys.readouterr().err


def test_correlate_of_three_runs_gives_a_nan_interval_without_a_warning(recwarn):
    """With three runs, a ninth of the paired resamples repeat one run and have no correlation:
    the percentile interval is then NaN (shown so in the table), and the estimate and the
    permutation p-value still stand."""
    rows = correlate([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], n_resamples=500)
    assert [r["statistic"] for r in rows] == ["pearson", "spearman", "kendall"]
    for row in rows:
        assert math.isfinite(row["estimate"]) and 0 <= row["p_value"] <= 1
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert not [w for w in recwarn if issubclass(w.category, Warning)], [str(w.message) for w in recwarn]
