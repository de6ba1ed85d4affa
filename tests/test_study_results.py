"""The study's results folder (README tables are copies of these files), arm labels, and a
study root of several sweep folders read as one set of runs."""

import json

import numpy as np
import pandas as pd
import pytest
from adadim.analysis import load_runs
from adadim.analysis.loading import arm_label
from adadim.analysis.runset import RunSet, combine
from adadim.analysis.study_results import accuracy_markdown, arm_order, claims_markdown, gradient_shares_markdown
from analysis_helpers import constant, planted_rows, write_run


@pytest.mark.parametrize(
    "config,label",
    [
        ({"method": "vicreg", "adadim.gamma": 0.2}, "vicreg"),  # beta = gamma * 0: no MI term to name
        ({"method": "fixed", "adadim.alpha": 0.25}, "fixed α=0.25"),
        ({"method": "adadim", "adadim.gamma": 0.0, "adadim.balance": "none"}, "adadim"),
        ({"method": "adadim", "adadim.gamma": 0.05, "adadim.mi_sign": "minimize"}, "adadim γ=0.05 minimize"),
        ({"method": "adadim", "adadim.balance": "grad"}, "adadim balance=grad"),
        ({"method": "cosine", "adadim.alpha": 0.5}, "cosine"),
    ],
)
def test_arm_labels_name_the_method_and_its_variant_never_the_seed(config, label):
    assert arm_label({**config, "run.seed": 3}) == label


def test_arms_print_methods_first_then_their_variants():
    arms = ["adadim γ=0.2 maximize", "fixed α=0.9", "simclr", "adadim", "fixed α=0.5", "fixed α=0.1", "vicreg"]
    assert arm_order(arms) == [
        "vicreg",
        "simclr",
        "fixed α=0.5",
        "fixed α=0.1",
        "fixed α=0.9",
        "adadim",
        "adadim γ=0.2 maximize",
    ]


def _study_root(tmp_path):
    """Two sweep folders under one root, as `adadim study` lays them out."""
    root = tmp_path / "runs"
    specs = {
        "part-a": [("vicreg", None, 0, 0.90), ("vicreg", None, 1, 0.92), ("simclr", None, 0, 0.80)],
        "part-b": [("fixed", 0.25, 0, 0.85), ("fixed", 0.25, 1, 0.87)],
    }
    for sweep, runs in specs.items():
        (root / sweep).mkdir(parents=True)
        (root / sweep / "sweep.json").write_text(json.dumps({"trials": []}))
        for k, (method, alpha, seed, acc) in enumerate(runs):
            config = {"method": method, "run": {"seed": seed}, "wandb": {"group": sweep}}
            if alpha is not None:
                config["adadim"] = {"alpha": alpha}
            summary = {
                "final/lowlabel_top1": acc,
                "final/linear_top1": 0.99,
                "final/random_init_lowlabel_top1": 0.5 + 0.1 * seed,
            }
            write_run(root / sweep, f"{sweep}-{k:03d}", planted_rows(20, constant(1.0), constant(0.5)), summary, config)
    return root


def test_a_study_root_loads_every_sweep_folder_and_parts_combine(tmp_path):
    root = _study_root(tmp_path)
    whole = load_runs(root, progress=False, cache_dir=None)
    assert len(whole) == 5 and set(whole.runs["group"]) == {"part-a", "part-b"}
    parts = combine([load_runs(root / p, progress=False, cache_dir=None) for p in ("part-a", "part-b")])
    assert sorted(parts.runs.index) == sorted(whole.runs.index)
    assert len(parts.history) == len(whole.history)
    with pytest.raises(ValueError, match="more than one source: part-a-000"):
        combine([load_runs(root / "part-a", progress=False, cache_dir=None)] * 2)


def test_accuracy_table_rows_are_arm_means_with_raw_and_random_init_rows(tmp_path):
    rs = load_runs(_study_root(tmp_path), progress=False, cache_dir=None)
    text = accuracy_markdown(rs, raw={"lowlabel_top1": 0.8676, "linear_top1": 0.9578})
    lines = text.splitlines()
    assert lines[2].startswith("| raw pixels | – | 95.78 | 86.76 | – | – |")
    # one random backbone per seed (0.5 and 0.6), whatever the number of runs of that seed
    assert lines[3].startswith("| random-init CNN (2 seeds) | – | – | 55.00 ± 7.07 |")
    assert lines[4].startswith("| vicreg | 2 | 99.00 ± 0.00 | 91.00 ± 1.41 |")
    assert lines[5].startswith("| simclr | 1 | 99.00 | 80.00 |")
    assert lines[6].startswith("| fixed α=0.25 | 2 | 99.00 ± 0.00 | 86.00 ± 1.41 |")


def test_claims_markdown_keeps_every_claim_with_its_interval_and_verdict():
    table = pd.DataFrame(
        [
            {
                "claim": "ratio_accuracy",
                "test": "t",
                "estimate": -0.5,
                "ci_low": -0.9,
                "ci_high": 0.1,
                "p_value": 0.04,
                "p_holm": 0.16,
                "supported": False,
                "n": 15,
                "note": "a | b",
            },
            {
                "claim": "coupling_early_late",
                "test": "t",
                "estimate": 0.3,
                "ci_low": 0.1,
                "ci_high": 0.5,
                "p_value": 1e-5,
                "p_holm": 4e-5,
                "supported": True,
                "n": 57,
                "note": "",
            },
        ]
    )
    lines = claims_markdown(table).splitlines()
    assert lines[2].startswith("| `ratio_accuracy` | -0.5 [-0.9, 0.1] | 0.04 | 0.16 | no | 15 |")
    assert lines[3].startswith("| `coupling_early_late` | 0.3 [0.1, 0.5] | 1.0e-05 | 4.0e-05 | yes | 57 |")
    assert lines[2].endswith("| a / b |")  # a pipe in a note cannot break the table


def test_gradient_shares_are_per_run_means_then_arm_means(tmp_path):
    def shares(s, t):  # NT-Xent gets 0.1 of the gradient, L_dim 0.9, on measured steps only
        return {"adadim/grad_share_nt_xent": 0.1, "adadim/grad_share_dimension": 0.9} if s % 5 == 0 else {}

    for k in range(2):
        config = {"method": "adadim", "run": {"seed": k}}
        write_run(tmp_path, f"a{k}", planted_rows(20, constant(1.0), constant(0.5), extra=shares), {}, config)
    config = {"method": "vicreg", "run": {"seed": 0}}
    rows = [{**r, "adadim/alpha": 0.0} for r in planted_rows(20, constant(1.0), constant(0.5), extra=shares)]
    write_run(tmp_path, "v0", rows, {}, config)
    text = gradient_shares_markdown(load_runs(tmp_path, progress=False, cache_dir=None))
    lines = text.splitlines()
    assert len(lines) == 3  # VICReg (alpha 0 throughout) has nothing to share
    assert lines[2] == "| adadim | 2 | 0.500 ± 0.000 | 0.100 ± 0.000 | 9.0 |"


def test_update_readme_replaces_only_the_marked_blocks(tmp_path):
    from adadim.sweeps.study import update_readme

    table = tmp_path / "accuracy.md"
    table.write_text("| new |\n")
    (tmp_path / "claims.md").write_text("| claims |\n")  # no block for it: nothing changes
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results/accuracy.md -->\n| old |\n| rows |\n<!-- /results/accuracy.md -->\nrest\n")
    assert update_readme(readme, [table, tmp_path / "claims.md"]) == ["accuracy.md"]
    assert readme.read_text() == "intro\n<!-- results/accuracy.md -->\n| new |\n<!-- /results/accuracy.md -->\nrest\n"


def test_update_readme_follows_blocks_that_name_their_results_folder(tmp_path):
    from adadim.sweeps.study import update_readme

    table = tmp_path / "accuracy.md"
    table.write_text("| new |\n")
    readme = tmp_path / "README.md"
    block = "<!-- results/study-digits/accuracy.md -->\n{}<!-- /results/study-digits/accuracy.md -->\n"
    mismatched = "<!-- results/a/accuracy.md -->\n| keep |\n<!-- /results/b/accuracy.md -->\n"
    readme.write_text(block.format("| old |\n") + mismatched)
    assert update_readme(readme, [table]) == ["accuracy.md"]
    assert readme.read_text() == block.format("| new |\n") + mismatched


def test_steering_table_reads_tracking_error_late_and_compares_with_the_source_arm(tmp_path):
    from adadim.analysis.study_results import steering_markdown, steering_table

    for seed, acc in enumerate([0.95, 0.96, 0.97]):
        config = {"method": "fixed", "adadim": {"alpha": 0.25}, "run": {"seed": seed}}
        write_run(
            tmp_path, f"src{seed}", planted_rows(20, constant(1.0), constant(0.5)), {"final/lowlabel_top1": acc}, config
        )

    def errors(s, t):  # large errors early (ignored), then |e| = 0.02 or 0.04 on alternate steps
        return {"steer/error": 0.5 if t < 0.3 else (0.02 if s % 2 else -0.04)}

    for seed, acc in enumerate([0.90, 0.91, 0.92]):
        config = {
            "method": "steer",
            "steer": {"target": "run", "target_run": "runs/src0"},
            "run": {"seed": seed},
        }
        rows = planted_rows(20, constant(1.0), constant(0.5), extra=errors)
        write_run(tmp_path, f"steer{seed}", rows, {"final/lowlabel_top1": acc}, config)
    rs = load_runs(tmp_path, progress=False, cache_dir=None)
    assert set(rs.runs["arm"]) == {"fixed α=0.25", "steer → src0"}
    table = steering_table(rs)
    row = table.iloc[0]
    assert row["arm"] == "steer → src0" and row["source_arm"] == "fixed α=0.25" and row["source_runs"] == 3
    assert row["tracking_error_median"] == pytest.approx(0.03)  # median of 0.02s and 0.04s, early 0.5s left out
    assert row["difference"] == pytest.approx(-0.05)
    assert row["p_value"] < 0.01 and row["p_holm"] == pytest.approx(row["p_value"])
    assert "| steer → src0 | 3 | 3.0% (3.0%) | 91.00 ± 1.00 | fixed α=0.25 (3 runs) | 96.00 ± 1.00 | -5.00 |" in (
        steering_markdown(rs)
    )


def test_write_results_draws_the_steering_figure_with_setpoints_and_source_runs(tmp_path):
    from adadim.analysis.study_results import steering_paths, write_results

    for seed in range(2):
        config = {"method": "fixed", "adadim": {"alpha": 0.25}, "run": {"seed": seed}}
        write_run(tmp_path / "runs", f"src{seed}", planted_rows(20, constant(1.0), constant(0.5)), {}, config)
    config = {"method": "steer", "steer": {"target": "run", "target_run": "x/src1"}, "run": {"seed": 5}}
    rows = planted_rows(
        20, constant(1.0), constant(0.5), extra=lambda s, t: {"steer/setpoint": 2.0, "steer/error": 0.0}
    )
    write_run(tmp_path / "runs", "steered", rows, {"final/lowlabel_top1": 0.9}, config)
    rs = load_runs(tmp_path / "runs", progress=False, cache_dir=None)
    paths = steering_paths(rs)
    assert set(paths["role"]) == {"steered", "source"} and set(paths["arm"]) == {"steer → src1"}
    assert paths.loc[paths["role"] == "source", "run_id"].nunique() == 2  # every run of the source arm
    assert (paths.loc[paths["role"] == "steered", "setpoint"] == 2.0).all()
    written = write_results(tmp_path / "results", rs, None, None)
    assert (tmp_path / "results" / "steering.md") in written and (tmp_path / "results" / "steering.png").is_file()


def test_mixed_arms_names_settings_that_differ_beyond_the_seed(tmp_path):
    from adadim.analysis.study_results import mixed_arms

    for k, (epochs, seed) in enumerate([(100, 0), (100, 1), (450, 0)]):
        config = {"method": "vicreg", "optim": {"epochs": epochs}, "run": {"seed": seed, "id": f"v{k}"}}
        write_run(tmp_path, f"v{k}", planted_rows(10, constant(1.0), constant(0.5)), {}, config)
    rs = load_runs(tmp_path, progress=False, cache_dir=None)
    assert mixed_arms(rs) == {"vicreg": {"optim.epochs": ["100", "450"]}}  # run.seed and run.id may differ
    assert mixed_arms(rs.select(["v0", "v1"])) == {}


def test_an_all_nan_steer_error_gives_no_tracking_rows_rather_than_an_error(tmp_path):
    from adadim.analysis.study_results import tracking_errors, write_results

    config = {"method": "steer", "run": {"seed": 0}}
    rows = planted_rows(10, constant(1.0), constant(0.5), extra=lambda s, t: {"steer/error": None})
    write_run(tmp_path / "runs", "s0", rows, {"final/lowlabel_top1": 0.9}, config)
    rs = load_runs(tmp_path / "runs", progress=False, cache_dir=None)
    assert tracking_errors(rs).empty
    write_results(tmp_path / "out", rs, None, None)  # the steering table is left out, nothing raises


def _steering_study(rng, shift: float) -> RunSet:
    """Two source rungs of 3 runs, each followed by 3 steered runs whose accuracy is the
    source's distribution shifted by ``shift`` (0: no difference at all)."""
    runs, history = [], []
    for rung, alpha in enumerate((0.25, 0.9)):
        for k in range(3):
            runs.append(
                {
                    "run_id": f"src{rung}{k}",
                    "method": "fixed",
                    "arm": f"fixed α={alpha}",
                    "final/lowlabel_top1": 0.95 + 0.003 * rng.standard_normal(),
                }
            )
            steered = {
                "run_id": f"st{rung}{k}",
                "method": "steer",
                "arm": f"steer → src{rung}0",
                "steer.target_run": f"runs/src{rung}0",
                "final/lowlabel_top1": 0.95 + shift + 0.003 * rng.standard_normal(),
            }
            runs.append(steered)
            history += [{"run_id": steered["run_id"], "trainer/step": s, "steer/error": 0.01} for s in range(0, 40, 10)]
    return RunSet(pd.DataFrame(runs).set_index("run_id"), pd.DataFrame(history))


@pytest.mark.slow
def test_steering_tests_hold_their_level_under_the_null_and_find_a_real_shift():
    """Welch's t with Holm over the two steered arms, by simulation with known truths: with no
    difference from the source rung a row is called significant about as often as 5% (Holm
    makes it rarer); with a shift of 4 standard deviations it usually is."""
    from adadim.analysis.study_results import steering_table

    rng = np.random.default_rng(0)
    null = [steering_table(_steering_study(rng, 0.0)) for _ in range(300)]
    raw = np.mean([(t["p_value"] < 0.05).mean() for t in null])
    holm = np.mean([(t["p_holm"] < 0.05).mean() for t in null])
    real = [steering_table(_steering_study(rng, 0.012)) for _ in range(100)]
    found = np.mean([(t["p_holm"] < 0.05).mean() for t in real])
    print(f"steering rows called significant: null {raw:.3f} (Holm {holm:.3f}), shift of 4 sd {found:.2f}")
    assert 0.01 <= raw <= 0.09 and holm <= raw
    assert found >= 0.6
