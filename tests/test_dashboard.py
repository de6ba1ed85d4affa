"""Dashboards: the offline page (data, then a real headless Chromium), the W&B workspace view
(built and serialized; no W&B server exists here), and the analysis logged as a W&B run."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from adadim.analysis import load_runs
from adadim.analysis import panel_keys as pk
from adadim.analysis.dashboard import build_dashboard, dashboard_data, hover_columns, minmax_indices
from adadim.analysis.studies import equilibrium
from adadim.analysis.wandb_export import wait_for_offline_log
from adadim.analysis.wandb_file import read_records, read_run
from adadim.analysis.workspace import build_workspace, spec_keys, workspace_spec
from adadim.cli import main
from adadim.dynamics import keys
from analysis_helpers import planted_rows, write_run
from trainer_helpers import tiny_overrides

GROUPS = ("simclr", "vicreg")
SEEDS = 3


def _decode(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype={"u2": "<u2", "u4": "<u4", "f4": "<f4"}[dtype])


def _write_study(root: Path, steps: int = 300, every: int = 2) -> Path:
    """Two methods x three seeds with known curves: H(R) rises to a seed-dependent level."""
    for g, method in enumerate(GROUPS):
        for seed in range(SEEDS):
            level = 1.0 + 0.5 * g + 0.1 * seed
            rows = planted_rows(
                steps,
                lambda t, lv=level: lv * (1 - np.exp(-4 * t)),
                lambda t, lv=level: 0.4 * lv * (1 - np.exp(-3 * t)) + 0.01,
                every=every,
                extra=lambda s, t: {"eval/knn_top1": 0.5 + 0.4 * t} if s % 30 == 0 else {},
            )
            summary = {"final/lowlabel_top1": 0.8 + 0.05 * seed - 0.1 * g, "final/linear_top1": 0.9}
            config = {"method": method, "run": {"seed": seed, "id": f"{method}-s{seed}"}, "optim": {"lr": 0.3}}
            write_run(root, f"{method}-s{seed}", rows, summary, config)
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return load_runs(_write_study(tmp_path_factory.mktemp("study") / "runs"), progress=False, cache_dir=None)


# ---- downsampling and the page's data ---------------------------------------------------------


def test_minmax_keeps_every_bucket_extreme_and_both_ends():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(10_007)
    values[[17, 5003, 9999]] = [40.0, -40.0, 25.0]  # planted spikes
    buckets = 50
    picked = minmax_indices(values, buckets)
    assert np.all(np.diff(picked) > 0) and picked[0] == 0 and picked[-1] == len(values) - 1
    assert len(picked) <= 2 * buckets + 2
    assert {17, 5003, 9999} <= set(picked.tolist())
    size = int(np.ceil(len(values) / buckets))
    for start in range(0, len(values), size):
        block = values[start : start + size]
        assert start + int(np.argmin(block)) in picked and start + int(np.argmax(block)) in picked
    assert np.array_equal(minmax_indices(values[:60], buckets), np.arange(60))


def test_page_data_is_downsampled_to_its_budget_and_keeps_the_extremes(tmp_path):
    rows = planted_rows(5000, lambda t: np.sin(12 * t), lambda t: 0.5 + 0.0 * t, every=1)
    rows[1234]["dynamics/H_R"] = 9.0  # a spike that plain striding would likely miss
    write_run(tmp_path, "long", rows)
    rs = load_runs(tmp_path, progress=False, cache_dir=None)
    data, stats = dashboard_data(rs, point_budget=600)
    assert stats["lines"] == 5  # train/loss, adadim/alpha, H(R), I(R;Z), the ratio
    assert stats["drawn"] < stats["logged"] and stats["max_points"] == 600 // 5
    line = data["series"]["dynamics/H_R"][0]
    steps, values = _decode(line[1], data["runs"][0]["xt"]), _decode(line[2], "f4")
    assert len(values) <= 120 and steps[0] == 0 and steps[-1] == 4999
    assert values.max() == pytest.approx(9.0) and 1234 in steps.tolist()
    truth = rs.history.set_index("trainer/step")["dynamics/H_R"]
    np.testing.assert_allclose(values, truth.loc[steps].to_numpy(), rtol=1e-6)  # real points, float32
    assert data["downsample"] == {"logged": stats["logged"], "drawn": stats["drawn"], "max_points": 120}


def test_page_data_groups_runs_and_matches_the_studies_equilibrium(study):
    data, _ = dashboard_data(study, window=0.2)
    assert [g["name"] for g in data["groups"]] == list(GROUPS)
    assert [len(g["runs"]) for g in data["groups"]] == [SEEDS, SEEDS]
    truth = equilibrium(study, [pk.PLANE_X, pk.RATIO], 0.2)
    for run in data["runs"]:
        for key in (pk.PLANE_X, pk.RATIO):
            assert run["eq"][key] == pytest.approx(truth.loc[run["id"], key], rel=1e-12)
        assert run["final"]["final/lowlabel_top1"] == pytest.approx(study.runs.loc[run["id"], "final/lowlabel_top1"])
        epochs = study.history[study.history["run_id"] == run["id"]].set_index("trainer/step")["trainer/epoch"]
        assert np.interp(150, *run["knots"]) == pytest.approx(epochs.loc[150])
    # Every metric on the page is registered, in registry order within its prefix.
    for section in data["sections"]:
        assert all(keys.is_registered(k) for k in section["keys"])
        for prefix in keys.SECTIONS:
            registered = [k for k in section["keys"] if k in keys.REGISTRY and k.startswith(prefix + "/")]
            assert registered == sorted(registered, key=list(keys.REGISTRY).index)
    assert {m["key"]: m["x"] for m in data["metrics"]}["eval/knn_top1"] == "epoch"


def test_the_plane_uses_the_excess_mi_when_runs_logged_it(study, tmp_path):
    assert dashboard_data(study)[0]["plane_y"] == "dynamics/I_RZ"  # the planted runs have no excess
    rows = planted_rows(30, lambda t: t, lambda t: t / 2, extra=lambda s, t: {"dynamics/I_RZ_excess": t / 4})
    write_run(tmp_path, "r", rows)
    data, _ = dashboard_data(load_runs(tmp_path, progress=False, cache_dir=None))
    assert data["plane_y"] == "dynamics/I_RZ_excess"
    (_, h, i, _) = data["plane"][0]
    np.testing.assert_allclose(_decode(i, "f4"), _decode(h, "f4") / 4, rtol=1e-6)


def test_the_first_view_names_registered_keys_only():
    assert all(k in keys.REGISTRY for k in pk.FIRST_VIEW)


def test_hover_shows_the_config_that_differs_but_not_ids():
    runs = pd.DataFrame(
        {
            "method": ["a", "a", "b"],
            "run.seed": [0, 1, 0],
            "run.id": ["x1", "x2", "x3"],
            "optim.lr": [0.3, 0.3, 0.3],
            "final/linear_top1": [0.1, 0.2, 0.3],
            "group": ["g", "g", "g"],
        }
    )
    assert hover_columns(runs, "method") == ["method", "run.seed"]


def test_registry_additions_and_patterns_reach_both_dashboards(monkeypatch, tmp_path):
    new = keys.Metric("dynamics/planted_new", "planted [nats]", "a key added to the registry", "nats")
    monkeypatch.setitem(keys.REGISTRY, new.key, new)
    monkeypatch.setattr(keys, "PATTERNS", (*keys.PATTERNS, "adadim/planted_share_*"))
    titles = {s.title: s for s in pk.sections()}
    assert new.key in titles["Representation dynamics"].keys
    assert "adadim/planted_share_*" in titles["Loss terms, loss weights and gradient shares"].patterns
    spec = workspace_spec(build_workspace("e", "p"))
    found = spec_keys(spec)
    assert new.key in found["history"]
    assert "^adadim/planted_share_.*$" in found["regex"]
    rows = planted_rows(
        20, lambda t: t, lambda t: t / 2, extra=lambda s, t: {new.key: t, "adadim/planted_share_a": 1 - t}
    )
    write_run(tmp_path, "r", rows)
    data, _ = dashboard_data(load_runs(tmp_path, progress=False, cache_dir=None))
    shown = {m["key"] for m in data["metrics"]}
    assert {new.key, "adadim/planted_share_a"} <= shown
    assert re.fullmatch(pk.pattern_regex("adadim/planted_share_*"), "adadim/planted_share_a")


# ---- the W&B workspace, at its boundary -------------------------------------------------------


def test_workspace_covers_every_section_key_and_round_trips():
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces.workspaces import internal

    view = build_workspace("me", "proj", by="method", band="stddev")
    spec = workspace_spec(view)
    text = json.dumps(spec)
    found = spec_keys(json.loads(text))
    for section in pk.sections():
        target = found["summary"] if section.kind == "bar" else found["history"]
        assert set(section.keys) <= target, section.title
    assert {pk.PLANE_X, pk.plane_ys()[0], pk.RATIO, "final/lowlabel_top1"} <= found["summary"]
    assert {pk.PLANE_X, *pk.plane_ys()} <= found["history"]
    assert found["group"] == {"method.value"}
    assert spec["spec"]["section"]["runSets"][0]["grouping"] == [{"section": "config", "name": "method.value"}]
    assert spec["spec"]["section"]["settings"]["shouldAutoGeneratePanels"] is False
    # The serialized view reads back as the same workspace.
    again = ws.Workspace._from_model(internal.View.model_validate(json.loads(text)))
    assert [s.name for s in again.sections] == [s.name for s in view.sections]
    assert [len(s.panels) for s in again.sections] == [len(s.panels) for s in view.sections]
    assert workspace_spec(build_workspace("me", "proj"))["spec"]["section"]["runSets"][0]["grouping"] == [
        {"section": "run", "name": "group"}
    ]


def test_dashboard_wandb_cli_dry_run_and_save_at_the_boundary(monkeypatch, capsys):
    from wandb_workspaces.workspaces import internal

    assert main(["dashboard", "wandb", "me/proj", "--dry-run", "--group-by", "run.seed"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["entity"] == "me" and spec["project"] == "proj"
    assert spec_keys(spec)["group"] == {"run.seed.value"}
    sent = []

    def upsert(view):  # the one call that needs a server
        sent.append(view.model_dump(by_alias=True, exclude_none=True, mode="json"))
        return {"upsertView": {"view": {"name": "abc123", "id": "id1"}}}

    monkeypatch.setattr(internal, "upsert_view2", upsert)
    # The view's URL asks the API for the app's address; no server here either.
    monkeypatch.setattr("wandb.Api", lambda *a, **k: None)
    monkeypatch.setattr("wandb_workspaces.workspaces.interface.get_app_url", lambda api: "https://wandb.example")
    assert main(["dashboard", "wandb", "me/proj", "--name", "mine", "--url"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("https://wandb.example/me/proj") and "abc123" in out
    assert sent[0]["displayName"] == "mine"
    assert spec_keys(sent[0]) == spec_keys(workspace_spec(build_workspace("me", "proj", "mine")))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dashboard", "wandb", "noslash", "--dry-run"], "expected ENTITY/PROJECT"),
        (["dashboard", "wandb", "a/b", "--dry-run", "--accuracy-key", "final/nope"], "not a registered metric"),
        (["dashboard", "local", "/nonexistent/runs", "--out", "x.html"], "no runs at"),
    ],
)
def test_dashboard_cli_refuses_bad_input(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# ---- a real trainer run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One short real training with every monitor group, the per-epoch low-label probe and the
    MI term on, logged offline to W&B. Barlow Twins, because it logs every loss term the others
    log plus its own."""
    root = tmp_path_factory.mktemp("real") / "runs"
    groups = "[entropy,mutual_information,permutation_baseline,normalized,effective_rank,uniformity,alignment,"
    overrides = tiny_overrides(
        root,
        "real",
        **{
            "method": "barlow",
            "optim.epochs": 2,
            "wandb.mode": "offline",
            "dynamics.metrics": groups + "alpha_req,lidar]",
            "eval.lowlabel_every_epochs": 1,
            "adadim.gamma": 0.1,
        },
    )
    assert main(["train", *overrides]) == 0
    (path,) = (root / "real").glob("wandb/offline-run-*/run-*.wandb")
    wait_for_offline_log(path)  # wandb's service may still be writing it
    return root / "real"


@pytest.mark.slow
def test_every_workspace_key_is_logged_by_a_real_run(real_run):
    (path,) = real_run.glob("wandb/offline-run-*/run-*.wandb")
    run = read_run(path)
    history = set().union(*(row.keys() for row in run["history"]))
    summary = set(run["summary"])
    found = spec_keys(workspace_spec(build_workspace("me", "proj", by="method")))
    # steer/* come only from method=steer runs (tests/test_trainer.py checks that they do), and
    # BYOL's own keys only from method=byol runs (tests/test_byol.py).
    byol_only = {"train/loss_byol", "train/byol_tau", "adadim/grad_norm_byol", "adadim/grad_share_byol"}
    assert {k for k in found["history"] - history if not k.startswith("steer/")} <= byol_only
    assert {k for k in found["history"] if k.startswith("steer/")} == {
        "steer/setpoint",
        "steer/error",
        "steer/integral",
        "steer/direction",
    }
    assert found["summary"] - summary == set()
    for regex in found["regex"]:
        assert any(re.fullmatch(regex, k) for k in history), regex
    assert "method" in run["config"]


@pytest.mark.slow
def test_the_page_of_a_real_run_shows_every_registered_curve_it_logged(real_run, tmp_path):
    rs = load_runs(real_run, progress=False, cache_dir=None)
    info = build_dashboard(rs, tmp_path / "d.html")
    data, _ = dashboard_data(rs)
    logged = {c for c in rs.history if keys.is_registered(c) and np.isfinite(rs.history[c].to_numpy(float)).any()}
    wanted = {k for s in pk.sections() if s.kind == "line" for k in pk.present(s, logged)}
    assert wanted == {m["key"] for m in data["metrics"]}
    assert len(data["plane"]) == 1 and info.runs == 1


# ---- the analysis as a W&B run ----------------------------------------------------------------


def _logged(row: dict, key: str) -> dict:
    """A media value of a history row: a nested dict, or dotted keys under ``key``."""
    if isinstance(row.get(key), dict):
        return row[key]
    return {k[len(key) + 1 :]: v for k, v in row.items() if k.startswith(key + ".")}


@pytest.mark.slow
def test_analyze_logs_tables_and_figures_as_an_offline_wandb_run(tmp_path, monkeypatch, capsys):
    import wandb

    source = _write_study(tmp_path / "runs", steps=120, every=2)
    monkeypatch.setattr(wandb.Table, "MAX_ROWS", 500)  # the trajectories table goes as a file
    out = tmp_path / "report"
    argv = ["analyze", str(source), "--out", str(out), "--resamples", "50", "--wandb-project", "proj"]
    assert main(argv) == 0
    assert "job_type analysis" in capsys.readouterr().out
    (path,) = out.glob("wandb/offline-run-*/run-*.wandb")
    run = read_run(path)
    (run_record,) = [r.run for r in read_records(path) if r.WhichOneof("record_type") == "run"]
    assert run_record.job_type == "analysis" and run_record.project == "proj"
    ids = run["config"]["source_run_ids"]
    assert sorted(ids.get("value", ids) if isinstance(ids, dict) else ids) == sorted(
        f"{m}-s{s}" for m in GROUPS for s in range(SEEDS)
    )
    (row,) = run["history"]
    files = path.parent / "files"
    tables = sorted(p.stem for p in (out / "tables").glob("*.csv"))
    as_files, as_tables = [], []
    for name in tables:
        frame = pd.read_csv(out / "tables" / f"{name}.csv")
        if len(frame) > 500:
            assert (files / "tables" / f"{name}.csv").is_file(), name
            as_files.append(name)
            continue
        media = _logged(row, f"tables/{name}")
        assert media["_type"] == "table-file" and media["nrows"] == len(frame), name
        logged = json.loads((files / media["path"]).read_text())
        assert logged["columns"] == [str(c) for c in frame.columns]
        numeric = frame.select_dtypes("number").columns  # an all-empty text column reads back as NaN
        back = pd.DataFrame(logged["data"], columns=logged["columns"])[numeric].apply(pd.to_numeric, errors="coerce")
        np.testing.assert_allclose(back.to_numpy(float), frame[numeric].to_numpy(float), rtol=1e-9)
        as_tables.append(name)
    assert as_files and len(as_tables) >= 3
    assert sorted(run["summary"]["analysis/table_files"]) == [f"tables/{n}.csv" for n in as_files]
    assert len(list((out / "figures").glob("*.png"))) >= 3
    for png in (out / "figures").glob("*.png"):
        media = _logged(row, f"figures/{png.stem}")
        assert media["_type"] == "image-file", png.stem
        assert (files / media["path"]).is_file()


# ---- the page in a real browser ---------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    return os.environ.get("ADADIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (no browser download). Skipped with the reason
    where it cannot be had; under CI (which installs it) a missing browser fails instead."""

    def unavailable(reason: str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must have a headless Chromium: {reason}")
        pytest.skip(reason)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        unavailable(f"playwright is not installed ({error})")
    if not Path(_chromium()).is_file():
        unavailable(f"no Chromium at {_chromium()} (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            # Playwright gives every launch a fresh temporary profile (--user-data-dir).
            launched = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        except Exception as error:
            unavailable(f"Chromium at {_chromium()} does not start: {str(error).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page_file(study, tmp_path_factory):
    return build_dashboard(study, tmp_path_factory.mktemp("page") / "dashboard.html").path


@contextlib.contextmanager
def open_page(browser, path: Path, width: int = 1500, height: int = 1000):
    """The page, offline, once it says it is ready; page errors, console errors and failed
    requests are collected in ``tab.errors`` and must be none when the block ends."""
    context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    tab.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    tab.goto(path.as_uri())
    tab.wait_for_selector("body[data-ready='1']", timeout=30_000)
    tab.errors = errors
    yield tab
    assert errors == []
    context.close()


@pytest.fixture
def page(browser, page_file):
    with open_page(browser, page_file) as tab:
        yield tab


TRACES = """() => {
  window.adadim.flush();  // draw the plots scrolled out of view too
  const out = {};
  for (const div of document.querySelectorAll('.js-plotly-plot')) {
    const name = div.id || div.parentNode.dataset.key;
    out[name] = div.data.map(t => t.meta || {});
  }
  return out;
}"""


def _runs_of(traces: list[dict], kind: str = "run") -> list[str]:
    return sorted(t["run"] for t in traces if t.get("kind") == kind)


@pytest.mark.slow
def test_page_opens_offline_without_errors_and_draws_every_run(page, study):
    assert page.errors == []
    traces = page.evaluate(TRACES)
    data = page.evaluate("window.adadim.data")
    every_run = sorted(study.runs.index)
    assert set(traces) == {*data["defaults"]["metrics"], "plane", "scatter"}
    for key in data["defaults"]["metrics"]:
        assert _runs_of(traces[key]) == every_run, key
    assert _runs_of(traces["plane"], "plane") == every_run
    assert sorted(t["group"] for t in traces["scatter"]) == list(GROUPS)
    points = page.evaluate("document.getElementById('scatter').data.map(t => t.x.length)")
    assert points == [SEEDS, SEEDS]
    note = page.inner_text("#downsample-note")
    assert "Every logged point is drawn" in note


@pytest.mark.slow
def test_a_click_on_a_group_or_a_run_changes_the_traces_everywhere(page, study):
    page.click("#group-1")  # vicreg off
    traces = page.evaluate(TRACES)
    simclr = sorted(r for r in study.runs.index if r.startswith("simclr"))
    assert _runs_of(traces["dynamics/H_R"]) == simclr
    assert _runs_of(traces["plane"], "plane") == simclr
    assert [t["group"] for t in traces["scatter"] if t["kind"] == "scatter"] == ["simclr"]
    assert [t["group"] for t in traces["dynamics/H_R"] if t["kind"] == "hidden"] == ["vicreg"]
    page.click("#group-1")
    page.click("details.group:first-of-type summary .count")  # open simclr's run list
    page.click("#run-0")
    traces = page.evaluate(TRACES)
    assert _runs_of(traces["dynamics/H_R"]) == sorted(set(study.runs.index) - {"simclr-s0"})
    assert page.evaluate("document.getElementById('group-0').indeterminate") is True


@pytest.mark.slow
def test_axes_smoothing_band_and_metric_controls(page):
    page.select_option("#x-axis", "progress")
    xs = page.evaluate("document.querySelector('.panel .plot').data.map(t => Array.from(t.x))")
    # H(R) is logged every 2nd step: its last point is step 298 of 299
    assert min(min(x) for x in xs) == 0 and max(max(x) for x in xs) == pytest.approx(298 / 299)
    page.check("#log-x")
    assert page.evaluate("document.querySelector('.panel .plot').layout.xaxis.type") == "log"
    page.uncheck("#log-x")
    page.select_option("#x-axis", "epoch")
    assert max(page.evaluate("Array.from(document.querySelector('.panel .plot').data[0].x)")) == pytest.approx(29.8)
    before = page.evaluate("Array.from(document.querySelector('.panel .plot').data[0].y)")
    page.fill("#smooth", "10")
    page.dispatch_event("#smooth", "input")
    after = page.evaluate("Array.from(document.querySelector('.panel .plot').data[0].y)")
    # The page's smoothing is a centred mean over 10% of the run's steps: check it against numpy.
    r, x, y = page.evaluate("window.adadim.data.series['dynamics/H_R'][0]")
    steps, values = _decode(x, page.evaluate(f"window.adadim.data.runs[{r}].xt")).astype(float), _decode(y, "f4")
    half = 0.1 * (steps[-1] - steps[0]) / 2
    expected = [values[np.abs(steps - s) <= half].astype(float).mean() for s in steps]
    np.testing.assert_allclose(before, values, rtol=1e-7)
    np.testing.assert_allclose(after, expected, rtol=1e-9)
    assert not np.allclose(after, before)
    page.check("#band")
    kinds = page.evaluate("document.querySelector('.panel .plot').data.map(t => t.meta.kind)")
    assert sorted(kinds) == ["band", "band", "mean", "mean"]
    count = page.evaluate("document.querySelectorAll('#panels .panel').length")
    page.check("input.metric-toggle[value='train/loss']")
    assert page.evaluate("document.querySelectorAll('#panels .panel').length") == count + 1
    assert page.locator(".panel[data-key='train/loss'] .js-plotly-plot").count() == 1


@pytest.mark.slow
def test_hover_names_the_run_its_group_and_config(page):
    page.evaluate("Plotly.Fx.hover(document.querySelector('.panel .plot'), [{curveNumber: 0, pointNumber: 20}])")
    text = page.evaluate("document.querySelector('.panel .plot .hoverlayer').textContent")
    assert "simclr-s0" in text and "group: simclr" in text and "run.seed: 0" in text


@pytest.mark.slow
def test_a_click_on_a_point_highlights_that_run_on_every_plot(page):
    page.locator("#scatter").scroll_into_view_if_needed()
    page.wait_for_function("document.getElementById('scatter').data !== undefined")
    page.evaluate(
        """() => { const gd = document.getElementById('scatter'), t = gd.data[1];
                   gd.emit('plotly_click', {points: [{data: t, customdata: t.customdata[2]}]}); }"""
    )
    widths = page.evaluate(TRACES.replace("t.meta || {}", "Object.assign({w: t.line && t.line.width}, t.meta)"))
    wide = {t["run"] for t in widths["dynamics/H_R"] if t.get("w") == 3}
    assert wide == {"vicreg-s2"}
    assert {t["run"] for t in widths["plane"] if t.get("w") == 3} == {"vicreg-s2"}


@pytest.mark.slow
def test_a_legend_click_toggles_the_group_on_every_plot(page, study):
    entry = page.locator(".panel").first.locator(".legend .traces").nth(1)  # vicreg's legend entry
    assert entry.text_content() == "vicreg"
    entry.locator(".legendtoggle").click()
    traces = page.evaluate(TRACES)
    assert all(not r.startswith("vicreg") for r in _runs_of(traces["dynamics/H_R"]))
    assert all(not r.startswith("vicreg") for r in _runs_of(traces["plane"], "plane"))
    entry = page.locator(".panel").first.locator(".legend .traces").nth(1)
    assert entry.text_content() == "vicreg"
    entry.locator(".legendtoggle").click()  # the greyed entry brings the group back
    assert _runs_of(page.evaluate(TRACES)["dynamics/H_R"]) == sorted(study.runs.index)


@pytest.mark.slow
def test_a_page_with_no_dynamics_and_no_scores_still_opens(browser, tmp_path):
    rows = [{"trainer/step": s, "train/loss": 1 / (s + 1)} for s in range(50)]
    write_run(tmp_path / "runs", "bare", rows, config={"method": "vicreg"})
    path = build_dashboard(load_runs(tmp_path / "runs", progress=False, cache_dir=None), tmp_path / "d.html").path
    with open_page(browser, path, 1280, 720) as tab:  # Playwright's default viewport
        assert tab.evaluate(TRACES) == {"train/loss": [{"run": "bare", "group": "vicreg", "kind": "run"}]}


@pytest.mark.slow
def test_many_runs_are_thinned_on_screen_and_hidden_plots_wait_for_scrolling(browser, tmp_path):
    from adadim.analysis.runset import RunSet

    n_runs, steps = 60, 2000
    t = np.linspace(0, 1, steps)
    rng = np.random.default_rng(1)
    history = pd.concat(
        pd.DataFrame(
            {
                "run_id": f"r{k}",
                "trainer/step": np.arange(steps),
                "train/loss": 1 - t / 2,
                pk.PLANE_X: (1 + k / n_runs) * (1 - np.exp(-4 * t)) + 0.01 * rng.standard_normal(steps),
                "dynamics/I_RZ": 0.5 * (1 - np.exp(-3 * t)) + 0.01,
                pk.RATIO: 2 + t,
            }
        )
        for k in range(n_runs)
    )
    runs = pd.DataFrame(
        {"method": ["a", "b"] * (n_runs // 2), "group": "g", "final/lowlabel_top1": np.linspace(0.8, 0.9, n_runs)},
        index=pd.Index([f"r{k}" for k in range(n_runs)], name="run_id"),
    )
    path = build_dashboard(RunSet(runs, history.reset_index(drop=True)), tmp_path / "many.html").path
    with open_page(browser, path, 1200, 500) as tab:
        lengths = tab.evaluate(
            "document.querySelector('.panel .plot').data.filter(t => t.meta.kind === 'run').map(t => t.x.length)"
        )
        assert len(lengths) == n_runs and max(lengths) <= 20000 // n_runs < steps
        assert "thinned to at most 333 points" in tab.inner_text("#draw-note")
        assert tab.evaluate("document.getElementById('scatter').data") is None  # below the fold: not drawn yet
        tab.locator("#scatter").scroll_into_view_if_needed()
        tab.wait_for_function("document.getElementById('scatter').data !== undefined", timeout=10_000)
        assert sorted(tab.evaluate("document.getElementById('scatter').data.map(t => t.x.length)")) == [30, 30]


@pytest.mark.slow
def test_screenshot_is_not_blank(page):
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    assert image.shape[:2] == (1000, 1500)
    not_white = (image < 240).any(axis=2).mean()
    assert not_white > 0.03
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7].tolist()}
    assert len(colours) > 50
    # both groups' line colours are on screen
    for hexa in ("#1f77b4", "#ff7f0e"):
        rgb = np.array([int(hexa[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(image - rgb).sum(axis=2) < 40).sum() > 50, hexa


@pytest.mark.slow
def test_the_steer_setpoint_is_drawn_dashed_over_the_ratio_of_steered_runs(browser, tmp_path):
    root = _write_study(tmp_path / "runs")

    def steered(s, t):
        return {"steer/setpoint": 2.5, "steer/error": 0.0} if s % 2 == 0 else {}

    rows = planted_rows(300, lambda t: 1.0 + 0 * t, lambda t: 0.4 + 0 * t, every=2, extra=steered)
    config = {"method": "steer", "run": {"seed": 0, "id": "steer-s0"}, "optim": {"lr": 0.3}}
    write_run(root, "steer-s0", rows, {"final/lowlabel_top1": 0.8, "final/linear_top1": 0.9}, config)
    rs = load_runs(root, progress=False, cache_dir=None)
    path = build_dashboard(rs, tmp_path / "dashboard.html").path
    with open_page(browser, path) as tab:
        assert tab.evaluate("window.adadim.data.overlays") == {"steer/setpoint": "dynamics/ratio_H_I"}
        traces = tab.evaluate(TRACES)
        assert _runs_of(traces["dynamics/ratio_H_I"], "overlay") == ["steer-s0"]  # the other runs have no setpoint
        assert _runs_of(traces["dynamics/H_R"], "overlay") == []
        dashed = tab.evaluate(
            "Array.from(document.querySelectorAll('.panel')).find(p => p.dataset.key === 'dynamics/ratio_H_I')"
            ".querySelector('.js-plotly-plot').data.filter(t => t.meta.kind === 'overlay')"
            ".map(t => [t.line.dash, t.y[0]])"
        )
        assert dashed and all(d == "dash" and y == pytest.approx(2.5) for d, y in dashed)
