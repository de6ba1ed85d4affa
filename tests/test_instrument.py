"""The measurement protocol of the trainer: the fixed probe set, a batch-size-free α, gradient
shares that do not change training, gradient balancing, fixed Gaussian widths and the noise floor."""

import json
import statistics

import pytest
from adadim.cli import main
from adadim.training.checkpoint import load_latest
from adadim.training.config import load_config
from adadim.training.trainer import train
from trainer_helpers import history, tiny_overrides

QUIET = {
    "wandb.mode": "disabled",
    "run.progress": "false",
    "eval.every_epochs": 0,
    "eval.final_probe": "false",
    "eval.random_init_baseline": "false",
    "eval.lowlabel_draws": 1,
    "eval.lowlabel_epochs": 5,
}


def _digits(tmp_path, run_id, **extra) -> list[str]:
    values = {**QUIET, "run.root": str(tmp_path), "run.id": run_id, **extra}
    return [f"{k}={v}" for k, v in values.items()]


@pytest.mark.slow
def test_frozen_network_gives_flat_probe_curves_but_noisy_batch_curves(tmp_path):
    """lr = 0: nothing learns. Measured on training batches the curves still move; on the probe
    set (eval mode, fixed views) they must be at least 5x flatter."""
    spread = {}
    for source in ("probe", "batch"):
        overrides = _digits(
            tmp_path,
            source,
            **{"optim.lr": 0, "optim.max_steps": 60, "dynamics.every": 5, "dynamics.source": source},
        )
        train(load_config("digits", overrides))
        rows = [r for r in history(tmp_path / source) if "dynamics/H_R" in r]
        assert len(rows) >= 12
        spread[source] = {
            key: statistics.stdev(r[key] for r in rows) for key in ("dynamics/H_R", "dynamics/I_RZ_excess")
        }
    for key in ("dynamics/H_R", "dynamics/I_RZ_excess"):
        assert spread["batch"][key] > 0, "batch measurements of a frozen network should still vary"
        assert spread["probe"][key] <= spread["batch"][key] / 5, (key, spread)


@pytest.mark.slow
def test_adadim_alpha_does_not_depend_on_the_batch_size(tmp_path):
    """One frozen network, three batch sizes: α at the first step agrees within 2% when erank(Z)
    is read on the probe set; on the training batch it does not (the defect the probe fixes)."""
    alphas = {}
    for source in ("probe", "batch"):
        for batch in (64, 256, 1024):
            run_id = f"{source}-{batch}"
            overrides = _digits(
                tmp_path,
                run_id,
                **{
                    "optim.lr": 0,
                    "optim.max_steps": 1,
                    "data.batch_size": batch,
                    "adadim.erank_source": source,
                    "dynamics.every": 0 if source == "batch" else 10,
                },
            )
            train(load_config("digits", overrides))
            alphas[source, batch] = history(tmp_path / run_id)[0]["adadim/alpha"]
    probe = [alphas["probe", b] for b in (64, 256, 1024)]
    assert max(probe) / min(probe) - 1 <= 0.02, alphas
    batch = [alphas["batch", b] for b in (64, 256, 1024)]
    assert max(batch) / min(batch) - 1 > 0.02, alphas


def _loss_history(run_dir):
    return [{k: v for k, v in r.items() if k.startswith("train/")} for r in history(run_dir)]


def test_gradient_shares_do_not_change_training(tmp_path):
    common = {"optim.epochs": 1, "adadim.gamma": 0.05, "run.log_every": 1}
    train(load_config(None, tiny_overrides(tmp_path, "with", **common, **{"dynamics.grad_shares": "true"})))
    train(load_config(None, tiny_overrides(tmp_path, "without", **common, **{"dynamics.grad_shares": "false"})))
    with_rows = history(tmp_path / "with")
    assert any("adadim/grad_share_nt_xent" in r for r in with_rows)
    assert not any("adadim/grad_share_nt_xent" in r for r in history(tmp_path / "without"))
    assert _loss_history(tmp_path / "with") == _loss_history(tmp_path / "without")  # bit for bit
    for r in with_rows:
        if "adadim/grad_share_nt_xent" in r:
            total = sum(r[f"adadim/grad_share_{t}"] for t in ("dimension", "nt_xent", "mi"))
            assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_vicreg_gets_no_nt_xent_gradient_and_simclr_no_vicreg_gradient(tmp_path):
    for method, absent in (("vicreg", "nt_xent"), ("simclr", "dimension")):
        train(load_config(None, tiny_overrides(tmp_path, method, method=method, **{"optim.epochs": 1})))
        rows = [r for r in history(tmp_path / method) if "adadim/grad_share_dimension" in r]
        assert rows and all(r[f"adadim/grad_share_{absent}"] == 0.0 for r in rows)
        assert all(r[f"adadim/grad_norm_{absent}"] == 0.0 for r in rows)


@pytest.mark.slow
def test_balance_grad_makes_alpha_the_nt_xent_share(tmp_path):
    overrides = tiny_overrides(
        tmp_path, "balanced", method="fixed", **{"adadim.alpha": 0.3, "adadim.balance": "grad", "adadim.every": 1}
    )
    train(load_config(None, overrides))
    rows = [r for r in history(tmp_path / "balanced") if "adadim/grad_share_nt_xent" in r]
    # The running estimates lag by one measurement: allow a few points after the first ones.
    late = [r["adadim/grad_share_nt_xent"] for r in rows[len(rows) // 2 :]]
    assert statistics.fmean(late) == pytest.approx(0.3, abs=0.05), late
    plain = tiny_overrides(tmp_path, "plain", method="fixed", **{"adadim.alpha": 0.3})
    train(load_config(None, plain))
    unbalanced = [
        r["adadim/grad_share_nt_xent"] for r in history(tmp_path / "plain") if "adadim/grad_share_nt_xent" in r
    ]
    assert abs(statistics.fmean(unbalanced) - 0.3) > abs(statistics.fmean(late) - 0.3)


def test_gaussian_width_is_fixed_once_and_kept_in_checkpoints(tmp_path):
    overrides = tiny_overrides(tmp_path, "gauss", **{"dynamics.kernel": "gaussian", "optim.epochs": 2})
    summary = train(load_config(None, overrides))
    widths = [summary["dynamics/sigma_R"], summary["dynamics/sigma_Z"]]
    assert all(w > 0 for w in widths)
    saved = json.loads((tmp_path / "gauss" / "summary.json").read_text())
    assert [saved["dynamics/sigma_R"], saved["dynamics/sigma_Z"]] == widths
    _, state = load_latest(tmp_path / "gauss" / "checkpoints")
    assert state["sigmas"] == widths  # a resumed run measures with the same widths


def test_noise_floor_command_writes_the_documented_file(tmp_path, capsys):
    train(load_config(None, tiny_overrides(tmp_path, "nf", **{"optim.epochs": 1})))
    assert main(["noise-floor", "--run", str(tmp_path / "nf"), "--repeats", "4"]) == 0
    floor = json.loads((tmp_path / "nf" / "noise_floor.json").read_text())
    assert floor["version"] == 1 and floor["repeats"] == 4 and floor["source"] == "probe"
    for key in ("dynamics/H_R", "dynamics/I_RZ_excess"):
        values = floor["samples"][key]
        assert len(values) == 4 and floor["sd"][key] == pytest.approx(statistics.stdev(values))
        assert floor["sd"][key] > 0, "fresh view draws must move the measurement"
    assert "noise floor of" in capsys.readouterr().out
    assert main(["noise-floor", "--run", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
