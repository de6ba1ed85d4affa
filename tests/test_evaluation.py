import json

import pytest
import torch
from adadim.cli import main
from adadim.training.config import EvalConfig, load_config
from adadim.training.data import load_splits
from adadim.training.evaluation import (
    draws_digest,
    evaluate_representation,
    knn_top1,
    lowlabel_draws,
    weighted_knn_top1,
)
from adadim.training.trainer import train
from omegaconf import OmegaConf
from trainer_helpers import history, tiny_overrides

SETTINGS = OmegaConf.structured(
    EvalConfig(lowlabel_k=[5, 10], lowlabel_draws=3, lowlabel_epochs=50, final_probe_epochs=20)
)


def _planted(n_per_class=60, classes=10, dim=32, noise_seed=0):
    """Separable classes: fixed centres (one draw for every call), fresh noise per noise_seed,
    so a test split is new points of the same classes, never the training points themselves."""
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(12345)) * 5
    noise = torch.randn(len(labels), dim, generator=torch.Generator().manual_seed(noise_seed))
    return centres[labels] + 0.1 * noise, labels


def test_separable_features_reach_100_percent_and_shuffled_labels_sit_at_chance():
    x, y = _planted(noise_seed=0)
    tx, ty = _planted(noise_seed=1)
    assert not torch.equal(x, tx)
    scores = evaluate_representation(x, y, {"": (tx, ty)}, SETTINGS)
    for key in (
        "lowlabel_top1",
        "lowlabel_top1_k5",
        "lowlabel_top1_k10",
        "linear_top1",
        "knn_top1",
        "knn_weighted_top1",
    ):
        assert scores[key] == pytest.approx(1.0), key
    assert scores["lowlabel_top1_std"] == pytest.approx(0.0)
    # Labels shuffled against the features: nothing to learn, accuracy near 1/10.
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    chance = evaluate_representation(x, shuffled, {"": (tx, ty)}, SETTINGS)
    for key in ("lowlabel_top1", "linear_top1", "knn_top1", "knn_weighted_top1"):
        assert chance[key] < 0.25, key


def test_draws_are_fixed_by_the_evaluation_seed_only():
    labels = torch.arange(10).repeat(30)
    a = lowlabel_draws(labels, 10, 5, seed=0)
    b = lowlabel_draws(labels, 10, 5, seed=0)
    assert draws_digest(a) == draws_digest(b)
    assert draws_digest(a) != draws_digest(lowlabel_draws(labels, 10, 5, seed=1))
    for idx in a:
        assert torch.bincount(labels[idx]).tolist() == [10] * 10
    assert len({tuple(d.tolist()) for d in a}) == 5  # the draws differ from each other


def test_two_runs_with_different_seeds_are_scored_on_the_same_draws(tmp_path):
    extra = {"optim.epochs": 1, "eval.lowlabel_k": "[3]", "eval.lowlabel_draws": 2, "eval.lowlabel_epochs": 5}
    a = train(load_config(None, tiny_overrides(tmp_path, "a", **extra, **{"run.seed": 1})))
    b = train(load_config(None, tiny_overrides(tmp_path, "b", **extra, **{"run.seed": 2})))
    assert a["final/lowlabel_draws"] == b["final/lowlabel_draws"]
    assert history(tmp_path / "a")[0]["train/loss"] != history(tmp_path / "b")[0]["train/loss"]
    splits = load_splits(load_config(None, tiny_overrides(tmp_path, "a", **extra)).data)
    sizes = {"final/": len(splits.test), "final/val_": len(splits.val), "final/random_init_": len(splits.test)}
    for summary in (a, b):
        for prefix, n in sizes.items():
            # Scores over exactly the split's images: a weighted-kNN accuracy is a multiple of 1/n,
            # a low-label score (the mean of 2 draws) a multiple of 1/(2n).
            for key, scale in (("knn_weighted_top1", n), ("lowlabel_top1", 2 * n)):
                value = summary[prefix + key] * scale
                assert abs(value - round(value)) < 1e-6, (prefix + key, value)


def image_bytes(dataset) -> set[bytes]:
    return {dataset[i][0].numpy().tobytes() for i in range(len(dataset))}


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_validation_split_is_disjoint_from_train_and_test(name):
    cfg = load_config(None, [f"data.name={name}"])
    splits = load_splits(cfg.data)
    assert splits.val is not None and len(splits.val) > 0
    assert not set(splits.val.indices) & set(splits.labeled_train.indices)
    assert splits.ssl_train is splits.labeled_train

    val, test, train_rows = image_bytes(splits.val), image_bytes(splits.test), image_bytes(splits.labeled_train)
    assert not val & test and not val & train_rows and not train_rows & test
    # Stratified: every class is in the validation split.
    assert {splits.val[i][1] for i in range(len(splits.val))} == set(range(splits.num_classes))


def test_val_seed_redraws_the_validation_images_and_leaves_the_test_split_alone():
    def split_rows(*overrides):
        splits = load_splits(load_config(None, list(overrides)).data)
        return [image_bytes(dataset) for dataset in (splits.labeled_train, splits.val, splits.test)]

    train0, val0, test0 = split_rows()
    assert split_rows("data.val_seed=0") == [train0, val0, test0]  # null means split_seed
    train1, val1, test1 = split_rows("data.val_seed=1")
    assert test1 == test0
    assert val1 != val0 and len(val1) == len(val0)
    assert train1 | val1 == train0 | val0  # the same training images, re-divided
    assert not val1 & test1 and not val1 & train1
    with pytest.raises(ValueError, match=r"data\.val_seed"):
        load_config(None, ["data.val_seed=1.5"])


def test_weighted_knn_uses_similarity_weights():
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    train_y = torch.tensor([0, 1, 1])
    test_x = torch.tensor([[1.0, 0.05]])
    test_y = torch.tensor([0])
    # Majority vote over all three picks class 1; similarity weights at T = 0.07 pick class 0.
    assert knn_top1(train_x, train_y, test_x, test_y, k=3) == 0.0
    assert weighted_knn_top1(train_x, train_y, test_x, test_y, k=3, temperature=0.07) == 1.0


def test_eval_command_scores_raw_and_random_baselines_and_a_run(tmp_path, capsys):
    fast = ["eval.lowlabel_draws=2", "eval.lowlabel_epochs=20", "eval.final_probe_epochs=10"]
    out = tmp_path / "raw.json"
    assert main(["eval", "--baseline", "raw", "--json", str(out), *fast]) == 0
    raw = json.loads(out.read_text())
    assert raw["knn_top1"] > 0.9 and 0.5 < raw["lowlabel_top1"] < raw["linear_top1"]
    assert "raw baseline" in capsys.readouterr().out
    assert main(["eval", "--baseline", "random", *fast]) == 0
    assert "random baseline" in capsys.readouterr().out
    assert main(["train", *tiny_overrides(tmp_path, "r", **{"optim.epochs": 1})]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    scored = tmp_path / "r.json"
    assert main(["eval", "--run", str(tmp_path / "r"), "--json", str(scored)]) == 0
    again = json.loads(scored.read_text())
    # Re-scoring the final checkpoint reproduces the trainer's own final evaluation.
    for key in ("linear_top1", "lowlabel_top1", "knn_top1", "knn_weighted_top1"):
        assert again[key] == pytest.approx(summary[f"final/{key}"]), key
    assert main(["eval", "--run", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
