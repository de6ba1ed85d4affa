"""The claims table and the statistics under it, checked against references and by
simulation with known truths (6 methods x 3 seeds; tests/claim_simulations.py)."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from adadim.analysis import DEFAULT_ACCURACY, claims, inference, load_runs
from adadim.analysis.claims_table import CLAIMS, COLUMNS
from adadim.analysis.method_comparison import compare_methods, compare_pair
from adadim.analysis.mixed import random_intercept
from adadim.analysis.noise_floor import find_noise_floor, floor_coupling, read_noise_floor
from adadim.analysis.report import AnalysisOptions, analyze
from analysis_helpers import write_run
from claim_simulations import runset, simulate, simulate_methods, write_study
from scipy import stats
from statsmodels.stats.multitest import multipletests

STUDIES = 25  # simulated studies per scenario


# ---- the building blocks against references ----------------------------------------------------


def test_holm_matches_statsmodels_and_skips_untested():
    p = np.array([0.01, 0.04, 0.03, 0.5, 0.002])
    np.testing.assert_allclose(inference.holm(p), multipletests(p, method="holm")[1], rtol=1e-12)
    np.testing.assert_allclose(inference.holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    with_nan = inference.holm([0.01, np.nan, 0.02])
    assert math.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02) and with_nan[2] == pytest.approx(0.02)


def test_fisher_mean_and_interval():
    r = np.array([0.95, 0.1, -0.2])
    assert inference.fisher_mean(r) == pytest.approx(np.tanh(np.arctanh(r).mean()))
    assert inference.fisher_mean(r) != pytest.approx(r.mean(), abs=1e-3)
    low, high = inference.correlation_ci(0.5, 28)
    assert (low, high) == pytest.approx(
        (np.tanh(np.arctanh(0.5) - 1.959964 / 5), np.tanh(np.arctanh(0.5) + 1.959964 / 5))
    )


def test_mixed_model_matches_statsmodels_and_the_balanced_anova():
    rng = np.random.default_rng(0)
    groups, seeds = 8, 4
    g = np.repeat(np.arange(groups), seeds)
    x = rng.normal(size=g.size) + np.repeat(rng.normal(size=groups), seeds)
    y = 1 + 0.5 * x + np.repeat(rng.normal(0, 1, groups), seeds) + rng.normal(0, 0.5, g.size)
    fit = random_intercept(y, np.column_stack([np.ones_like(x), x]), g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = smf.mixedlm("y ~ x", pd.DataFrame({"y": y, "x": x, "g": g}), groups=g).fit(reml=True)
    np.testing.assert_allclose(fit.coef, reference.fe_params.to_numpy(), rtol=1e-4)
    assert fit.sigma2_error == pytest.approx(reference.scale, rel=1e-3)
    assert fit.sigma2_group == pytest.approx(float(reference.cov_re.iloc[0, 0]), rel=1e-3)
    # Balanced one-way random effects: REML has a closed form and Satterthwaite's df is G - 1.
    y2 = np.repeat(rng.normal(0, 2, groups), seeds) + rng.normal(0, 1, g.size)
    fit2 = random_intercept(y2, np.ones((g.size, 1)), g)
    msb = seeds * np.var(y2.reshape(groups, seeds).mean(axis=1), ddof=1)
    msw = np.mean(np.var(y2.reshape(groups, seeds), axis=1, ddof=1))
    assert fit2.coef[0] == pytest.approx(y2.mean())
    assert fit2.se[0] ** 2 == pytest.approx(msb / g.size, rel=1e-5)
    assert fit2.df[0] == pytest.approx(groups - 1, rel=1e-3)
    assert (fit2.sigma2_error, fit2.sigma2_group) == pytest.approx((msw, (msb - msw) / seeds), rel=1e-4)
    # One run per group: ordinary least squares with n - p degrees of freedom.
    ols = random_intercept(y, np.column_stack([np.ones_like(x), x]), np.arange(g.size))
    assert ols.p_value(1) == pytest.approx(stats.linregress(x, y).pvalue, rel=1e-9)


def test_trend_test_holds_its_level_under_autocorrelation_and_finds_trends():
    rng = np.random.default_rng(0)
    n, phi, sims = 30, 0.6, 300
    t = np.arange(n) * 10.0
    naive = adjusted = found = 0
    for _ in range(sims):
        e = np.zeros(n)
        e[0] = rng.normal() / math.sqrt(1 - phi**2)
        for k in range(1, n):
            e[k] = phi * e[k - 1] + rng.normal()
        naive += stats.linregress(t, e).pvalue < 0.05
        adjusted += inference.trend_test(t, e).p_value < 0.05
        found += inference.trend_test(t, e + 0.2 * np.arange(n)).p_value < 0.05
    assert naive / sims > 0.2  # the trap: OLS on autocorrelated noise
    assert adjusted / sims < 0.12 and found / sims > 0.8
    # Without autocorrelation it is the OLS test.
    white = rng.normal(size=40)
    assert inference.trend_test(np.arange(40.0), white).slope == pytest.approx(
        stats.linregress(np.arange(40), white).slope
    )


def test_two_lines_finds_a_planted_peak_and_not_a_line_or_a_plateau():
    rng = np.random.default_rng(3)
    x = np.linspace(0, 1, 40)
    peak = two = inference.two_lines(x, 1 - 4 * (x - 0.6) ** 2 + rng.normal(0, 0.03, x.size))
    assert peak.b1 > 0 > peak.b2 and peak.p_value < 1e-4 and 0.4 < two.breakpoint < 0.8
    line = inference.two_lines(x, 0.5 * x + rng.normal(0, 0.03, x.size))
    assert not (line.b1 > 0 > line.b2 and line.p_value < 0.05)
    plateau = inference.two_lines(x, 1 - np.exp(-x / 0.15) + rng.normal(0, 0.03, x.size))
    assert not (plateau.b1 > 0 > plateau.b2 and plateau.p_value < 0.05)
    assert math.isnan(inference.two_lines(x[:5], x[:5]).p_value)


def test_noise_floor_reader(tmp_path):
    samples = {"dynamics/H_R": [1.0, 1.2, 0.9, 1.1, 1.3], "dynamics/I_RZ_excess": [0.5, 0.62, 0.44, 0.55, 0.7]}
    run = tmp_path / "runA"
    (run / "wandb" / "offline-run-1").mkdir(parents=True)
    (run / "noise_floor.json").write_text(json.dumps({"version": 1, "samples": samples}))
    assert find_noise_floor("runA", run) == run / "noise_floor.json"
    assert find_noise_floor("runA", run / "wandb" / "offline-run-1" / "run-runA.wandb") == run / "noise_floor.json"
    assert find_noise_floor("runB", tmp_path / "runB") is None
    r, n = floor_coupling(read_noise_floor(run / "noise_floor.json"))
    expected = np.corrcoef(np.diff(samples["dynamics/H_R"]), np.diff(samples["dynamics/I_RZ_excess"]))[0, 1]
    assert (r, n) == (pytest.approx(expected), 4)
    (run / "noise_floor.json").write_text(json.dumps({"version": 2, "samples": samples}))
    with pytest.raises(ValueError, match="not a version-1 noise floor"):
        read_noise_floor(run / "noise_floor.json")
    with pytest.raises(ValueError, match=">= 5 paired samples"):
        floor_coupling({"samples": {k: v[:3] for k, v in samples.items()}})


# ---- simulations with known truths --------------------------------------------------------------


def _rates(accuracy: str, coupling: str, floor_root=None, studies: int = STUDIES, seed: int = 0):
    """Per claim, the share of simulated studies where it is supported; also checks p_holm >= p."""
    rng = np.random.default_rng(seed)
    supported, naive = [], []
    for k in range(studies):
        study = simulate(rng, accuracy, coupling)
        table = claims(runset(study, None if floor_root is None else floor_root / f"s{k}"))
        assert list(table.columns) == list(COLUMNS) and list(table["claim"]) == list(CLAIMS)
        tested = table["p_value"].notna()
        assert (table.loc[tested, "p_holm"] >= table.loc[tested, "p_value"] - 1e-15).all()
        supported.append(table.set_index("claim")["supported"])
        eq = study.history.groupby("run_id")["dynamics/ratio_H_I"].apply(lambda v: v.iloc[-12:].mean())
        naive.append(stats.pearsonr(eq, study.runs.loc[eq.index, DEFAULT_ACCURACY]).pvalue < 0.05)
    rates = pd.DataFrame(supported).mean()
    print(f"\n{accuracy}/{coupling} (floor files: {floor_root is not None}): supported rates {rates.to_dict()}")
    return rates, float(np.mean(naive))


@pytest.mark.slow
def test_ratio_accuracy_under_clustered_null_and_true_effect(tmp_path):
    null, naive = _rates("null", "noise", tmp_path)
    # The scenario is a trap: treating the 18 runs as independent finds a correlation often.
    print(f"naive 18-run Pearson test rejects at 5% in {naive:.0%} of the clustered-null studies")
    assert naive >= 0.25, naive
    assert null["ratio_accuracy"] <= 0.2
    effect, _ = _rates("ratio", "noise", tmp_path / "effect", seed=1)
    assert effect["ratio_accuracy"] >= 0.6


@pytest.mark.slow
def test_optimum_under_plateau_and_true_optimum():
    rng = np.random.default_rng(5)
    vertex_inside = 0
    for _ in range(STUDIES):  # the trap: a parabola's vertex lands inside a plateau's range
        study = simulate(rng, "plateau")
        h = study.history.groupby("run_id")["dynamics/H_R"].apply(lambda v: v.iloc[-12:].mean())
        quad = inference.quadratic(h, study.runs.loc[h.index, DEFAULT_ACCURACY])
        vertex_inside += quad["c2"] < 0 and h.min() < quad["vertex"] < h.max()
    print(f"\nplateau: the parabola opens downward with its vertex inside the data in {vertex_inside / STUDIES:.0%}")
    assert vertex_inside / STUDIES >= 0.3, vertex_inside
    plateau, _ = _rates("plateau", "noise", seed=2)
    assert plateau["optimum_H_R"] <= 0.2 and plateau["optimum_I_RZ_excess"] <= 0.2
    effect, _ = _rates("optimum", "noise", seed=3)
    assert effect["optimum_H_R"] >= 0.6 and effect["optimum_I_RZ_excess"] <= 0.2


@pytest.mark.slow
@pytest.mark.parametrize("floor_files", [True, False], ids=["noise_floor.json", "surrogate"])
def test_coupling_under_constant_noise_and_true_coupling(tmp_path, floor_files):
    root = tmp_path if floor_files else None
    null, _ = _rates("null", "noise", root, seed=4)
    assert null["coupling_early_late"] <= 0.2
    effect, _ = _rates("null", "early", None if root is None else root / "effect", seed=5)
    assert effect["coupling_early_late"] >= 0.6


# ---- runs in the trainer's on-disk format ----------------------------------------------------------


def test_claims_from_runs_on_disk(tmp_path):
    rng = np.random.default_rng(11)
    rs = load_runs(write_study(simulate(rng, "ratio", "early"), tmp_path / "a"), progress=False)
    table = claims(rs).set_index("claim")
    assert table.loc["ratio_accuracy", "supported"] and table.loc["ratio_accuracy", "estimate"] < 0
    assert table.loc["ratio_accuracy", "n"] == 6 and "6 group means of 18 runs" in table.loc["ratio_accuracy", "note"]
    assert table.loc["coupling_early_late", "supported"]
    assert "noise_floor.json: 18 runs" in table.loc["coupling_early_late", "note"]
    assert not table.loc["optimum_H_R", "supported"]
    # A claimed sign that the data contradict is not supported, whatever the p-value.
    opposite = claims(rs, ratio_sign=1).set_index("claim").loc["ratio_accuracy"]
    assert opposite["p_holm"] < 0.05 and not opposite["supported"]

    rs = load_runs(write_study(simulate(rng, "optimum", "noise"), tmp_path / "b", floors=False), progress=False)
    table = claims(rs).set_index("claim")
    assert table.loc["optimum_H_R", "supported"] and table.loc["optimum_H_R", "estimate"] < 0
    assert "surrogate (late-window residuals): 18 runs" in table.loc["coupling_early_late", "note"]
    assert not table.loc["coupling_early_late", "supported"]


def test_claims_flag_unsettled_runs_and_untestable_claims(tmp_path):
    rng = np.random.default_rng(12)
    study = simulate(rng, "null", "noise")
    rising = study.history["run_id"] == "m0-s0"
    study.history.loc[rising, "dynamics/H_R"] += np.linspace(0, 0.5, int(rising.sum()))
    study.history = study.history.drop(columns="dynamics/I_RZ_excess")
    study.history["dynamics/ratio_H_I"] = np.nan
    root = write_study(study, tmp_path / "runs")
    (root / "m1-s0" / "noise_floor.json").write_text("{not json")
    table = claims(load_runs(root, progress=False)).set_index("claim")
    assert (
        "m0-s0" in table.loc["optimum_H_R", "note"]
        and "not settled on dynamics/H_R" in table.loc["optimum_H_R", "note"]
    )
    for claim in ("ratio_accuracy", "optimum_I_RZ_excess", "coupling_early_late"):
        assert math.isnan(table.loc[claim, "p_value"]) and not table.loc[claim, "supported"]
        assert table.loc[claim, "note"].startswith("not tested")
    # Holm's family is the claims that were tested.
    assert table.loc["optimum_H_R", "p_holm"] == pytest.approx(table.loc["optimum_H_R", "p_value"])
    with pytest.raises(KeyError, match="no accuracy key"):
        claims(load_runs(root, progress=False), accuracy="final/nothing")
    with pytest.raises(ValueError, match="ratio_sign"):
        claims(load_runs(root, progress=False), ratio_sign=2)


def test_unusable_noise_floor_falls_back_to_the_surrogate(tmp_path):
    root = write_study(simulate(np.random.default_rng(13), "null", "early"), tmp_path / "runs")
    (root / "m1-s0" / "noise_floor.json").write_text("{not json")
    note = claims(load_runs(root, progress=False)).set_index("claim").loc["coupling_early_late", "note"]
    assert "noise_floor.json: 17 runs" in note and "surrogate (late-window residuals): 1 runs" in note
    assert "unusable noise floors: m1-s0" in note


def test_analyze_writes_the_claims_table_and_the_report_opens_with_it(tmp_path):
    root = write_study(simulate(np.random.default_rng(14), "ratio", "early"), tmp_path / "runs")
    out = tmp_path / "out"
    result = analyze(root, out, AnalysisOptions(studies=("claims", "coupling"), n_resamples=50, progress=False))
    written = pd.read_csv(out / "tables" / "claims.csv")
    assert list(written.columns) == list(COLUMNS) and list(written["claim"]) == list(CLAIMS)
    np.testing.assert_allclose(written["p_holm"], result.tables["claims"]["p_holm"])
    assert (out / "tables" / "claims.md").read_text().count("|") > 40
    assert "ratio\\_accuracy" in (out / "tables" / "claims.tex").read_text()
    page = (out / "report.html").read_text()
    assert page.index("<h2>Claims</h2>") < min(page.index(h) for h in ("<h2>Runs side by side", "<h2>Coupling"))
    coupling = pd.read_csv(out / "tables" / "coupling.csv")
    assert (coupling["p_holm"] >= coupling["p_value"] - 1e-15).all()


# ---- ratio_accuracy within and between arms ---------------------------------------------------------


@pytest.mark.slow
def test_ratio_accuracy_within_and_between_arms_by_simulation():
    null, _ = _rates("null", "noise", studies=40, seed=21)
    assert null["ratio_accuracy"] <= 0.1  # the clustered null: arm offsets only
    within, _ = _rates("within", "noise", studies=40, seed=22)
    assert within["ratio_accuracy"] >= 0.6  # the relation holds run by run, 6 arms x 3 seeds
    between, _ = _rates("between", "noise", studies=40, seed=23)
    assert between["ratio_accuracy"] >= 0.6  # only the arms' means carry it, as before the split


def test_ratio_row_reports_both_parts_and_the_within_part_matches_fixed_effects():
    study = simulate(np.random.default_rng(31), "within", "noise")
    row = claims(runset(study)).set_index("claim").loc["ratio_accuracy"]
    assert "decided by within" in row["note"] and "between r = " in row["note"] and "(11 df)" in row["note"]
    # The within part is the slope of accuracy on the ratio with one intercept per arm (OLS).
    eq = study.history.groupby("run_id")["dynamics/ratio_H_I"].apply(lambda v: v.iloc[-12:].mean())
    frame = pd.DataFrame(
        {"x": eq, "y": study.runs.loc[eq.index, DEFAULT_ACCURACY], "g": study.runs.loc[eq.index, "group"]}
    )
    fit = smf.ols("y ~ x + C(g)", frame).fit()
    assert row["p_value"] == pytest.approx(min(1.0, 2 * fit.pvalues["x"]), rel=0.05)
    assert row["supported"] and row["n"] == 18 and np.sign(row["estimate"]) == np.sign(fit.params["x"])


# ---- method_comparison ---------------------------------------------------------------------------


def _method_rate(studies: int, seed: int, **kwargs) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(studies):
        result, _ = compare_methods(simulate_methods(rng, **kwargs), DEFAULT_ACCURACY)
        hits += result["p_value"] < 0.05 and result["sign_ok"]
    return hits / studies


@pytest.mark.slow
@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_method_comparison_level_and_power_by_simulation(paired):
    assert _method_rate(200, 41, gain=0.0, paired=paired) <= 0.1  # no difference at all
    assert _method_rate(200, 42, gain=2.0, paired=paired, tied="byol") <= 0.1  # one baseline as good
    power = _method_rate(200, 43, gain=2.0, paired=paired)
    print(f"\nmethod_comparison, 5 seeds, 2-sd gain ({'paired' if paired else 'Welch'}): supported in {power:.0%}")
    assert power >= 0.6


def test_method_comparison_pairs_by_seed_and_falls_back_to_welch():
    a = pd.Series([0.91, 0.93, 0.92], index=[0, 1, 2])
    b = pd.Series([0.90, 0.915, 0.905], index=[2, 0, 1])
    paired = compare_pair(a, b)
    diffs = a - b.loc[a.index]
    assert paired["test"] == "paired" and paired["estimate"] == pytest.approx(diffs.mean())
    assert paired["p_value"] == pytest.approx(stats.ttest_rel(a, b.loc[a.index], alternative="greater").pvalue)
    welch = compare_pair(a, b.set_axis([3, 4, 5]))
    assert welch["test"] == "Welch"
    assert welch["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)
    assert welch["ci_low"] < welch["estimate"] < welch["ci_high"]


def test_method_comparison_row_from_runs_on_disk(tmp_path):
    runs = simulate_methods(np.random.default_rng(51), gain=8.0)
    runs.loc[runs["method"] == "simclr", DEFAULT_ACCURACY] += 0.009  # the best baseline, 3 sd below AdaDim
    rows = [{"trainer/step": s, "train/loss": 1.0} for s in range(3)]
    for run_id, run in runs.iterrows():
        config = {"method": run["method"], "run": {"seed": int(run["run.seed"])}}
        write_run(tmp_path, run_id, rows, {DEFAULT_ACCURACY: float(run[DEFAULT_ACCURACY])}, config)
    row = claims(load_runs(tmp_path, progress=False)).set_index("claim").loc["method_comparison"]
    assert row["supported"] and "best baseline: simclr" in row["note"] and row["n"] == 25
    adadim = runs.loc[runs["method"] == "adadim", DEFAULT_ACCURACY].mean()
    simclr = runs.loc[runs["method"] == "simclr", DEFAULT_ACCURACY].mean()
    assert row["estimate"] == pytest.approx(adadim - simclr)
    for name in ("vicreg", "byol", "barlow"):
        assert f"{name} " in row["note"] and "(paired" in row["note"]
    # AdaDim's variants are arms of their own: adding γ > 0 runs (far below every baseline, on
    # other seeds) changes neither the AdaDim arm nor the pairing.
    for seed in range(5, 8):
        config = {"method": "adadim", "adadim": {"gamma": 0.2}, "run": {"seed": seed}}
        write_run(tmp_path, f"mi-{seed}", rows, {DEFAULT_ACCURACY: 0.5}, config)
    again = claims(load_runs(tmp_path, progress=False)).set_index("claim").loc["method_comparison"]
    assert again["supported"] and again["n"] == 25 and again["estimate"] == pytest.approx(row["estimate"])
    assert "adadim (5 runs)" in again["note"] and "Welch" not in again["note"]
    # Without a baseline arm the row is not tested, and stays out of Holm's family.
    only = runs[runs["method"] == "adadim"]
    result, note = compare_methods(only, DEFAULT_ACCURACY)
    assert result == {} and "needs a baseline arm" in note
