"""The metric registry: every key a run logs, with its unit, its x-axis and what it means.

One home for the names. The monitor, the trainer, the run logger, the analysis, the
dashboards and the tests read it, so a renamed key fails loudly instead of vanishing from a
figure. A key belongs to one section (its prefix): ``dynamics/`` (the monitor), ``train/``
(loss terms), ``adadim/`` (loss weights), ``steer/`` (method=steer's controller), ``eval/``
(per-epoch scores), ``final/`` (the evaluation protocol, in the summary) and ``trainer/``
(bookkeeping).

It lives in the lowest layer, beside the monitor, because it is plain data that every
package may read.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

STEP = "trainer/step"
EPOCH = "trainer/epoch"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # axis label, with the unit in brackets where there is one
    description: str
    unit: str = ""
    x: str = STEP  # the step metric it is plotted against; "" for summary-only keys


def _m(key: str, label: str, description: str, unit: str = "", x: str = STEP) -> Metric:
    return Metric(key, label, description, unit, x)


_N = "N = dynamics/n_samples"
_ALL: tuple[Metric, ...] = (
    # -- the dynamics monitor ------------------------------------------------------------
    _m("dynamics/H_R", "H(R) [nats]", "matrix Rényi entropy of the representation R", "nats"),
    _m("dynamics/H_Z", "H(Z) [nats]", "matrix Rényi entropy of the embedding Z", "nats"),
    _m("dynamics/H_RZ", "H(R,Z) [nats]", "joint matrix Rényi entropy of R and Z (Hadamard product)", "nats"),
    _m(
        "dynamics/I_RZ",
        "I(R;Z) [nats]",
        "raw matrix mutual information H(R) + H(Z) - H(R,Z); mostly self-similarity, nonzero for independent data",
        "nats",
    ),
    _m(
        "dynamics/I_RZ_excess",
        "I_excess(R;Z) [nats]",
        "I(R;Z) minus its expectation over random sample permutations of Z (exact at order 2): "
        "about 0 for independent R and Z; the dependence measure to read",
        "nats",
    ),
    _m("dynamics/I_RZ_perm", "I(R;πZ) [nats]", "mean I(R;Z) over seeded sample permutations of Z", "nats"),
    _m(
        "dynamics/ratio_H_I",
        "H(R) / I_excess(R;Z)",
        "H(R) divided by the excess I(R;Z) over the permutation null; NaN when that excess <= 0",
    ),
    _m("dynamics/ratio_H_I_raw", "H(R) / I(R;Z)", "H(R) divided by the raw I(R;Z); NaN when I(R;Z) <= 1e-12"),
    _m("dynamics/H_R_norm", "H(R) / log N", f"H(R) divided by log N, {_N}"),
    _m("dynamics/H_Z_norm", "H(Z) / log N", f"H(Z) divided by log N, {_N}"),
    _m("dynamics/H_RZ_norm", "H(R,Z) / log N", f"H(R,Z) divided by log N, {_N}"),
    _m("dynamics/I_RZ_norm", "I(R;Z) / log N", f"I(R;Z) divided by log N, {_N}"),
    _m("dynamics/I_RZ_excess_norm", "I_excess(R;Z) / log N", f"I_excess(R;Z) divided by log N, {_N}"),
    _m("dynamics/I_RZ_perm_norm", "I(R;πZ) / log N", f"I(R;πZ) divided by log N, {_N}"),
    _m("dynamics/erank_R", "effective rank of R", "exp of the entropy of R's normalized singular values"),
    _m("dynamics/erank_Z", "effective rank of Z", "exp of the entropy of Z's normalized singular values"),
    _m("dynamics/uniformity_Z", "uniformity of Z", "Wang & Isola uniformity: log mean exp(-t|z_i - z_j|^2)"),
    _m("dynamics/alignment_Z", "alignment of Z", "Wang & Isola alignment: mean |z - z'|^alpha between views"),
    _m("dynamics/alpha_req_R", "α-ReQ of R", "power-law decay of R's covariance spectrum"),
    _m("dynamics/alpha_req_R_r2", "α-ReQ R² of R", "goodness of the α-ReQ fit on R"),
    _m("dynamics/alpha_req_Z", "α-ReQ of Z", "power-law decay of Z's covariance spectrum"),
    _m("dynamics/alpha_req_Z_r2", "α-ReQ R² of Z", "goodness of the α-ReQ fit on Z"),
    _m("dynamics/lidar_R", "LiDAR of R", "effective rank of the LDA matrix of R across views"),
    _m("dynamics/lidar_Z", "LiDAR of Z", "effective rank of the LDA matrix of Z across views"),
    _m("dynamics/n_samples", "N", "number of samples measured (views stacked)"),
    # -- loss terms ----------------------------------------------------------------------
    _m("train/loss", "SSL loss", "the objective that was back-propagated"),
    _m("train/loss_vicreg", "VICReg loss", "VICReg (25/25/1) on the global batch, unweighted"),
    _m("train/vicreg_invariance", "VICReg invariance", "mean squared distance between the views' Z"),
    _m("train/vicreg_variance", "VICReg variance", "hinge on each feature's standard deviation"),
    _m("train/vicreg_covariance", "VICReg covariance", "sum of squared off-diagonal covariances / D"),
    _m("train/loss_nt_xent", "NT-Xent loss", "SimCLR's NT-Xent, unweighted"),
    _m("train/loss_barlow", "Barlow Twins loss", "Barlow Twins, unweighted (method=barlow only)"),
    _m("train/loss_mi", "MI term [nats]", "the matrix MI term I(R;Z) of the objective, unweighted", "nats"),
    _m("train/loss_byol", "BYOL loss", "BYOL's symmetric 2 - 2·cos(prediction, target projection) (method=byol only)"),
    _m("train/byol_tau", "BYOL τ", "EMA rate of BYOL's target network for the next update (method=byol only)"),
    _m("train/probe_loss", "online probe loss", "cross-entropy of the online linear probe on detached R"),
    _m("train/lr", "learning rate", "the learning rate of this step"),
    # -- loss weights --------------------------------------------------------------------
    _m("adadim/alpha", "α", "weight of NT-Xent; 1 - α weights the dimension-contrastive loss"),
    _m("adadim/beta", "β", "weight of the MI term, β = γ·α"),
    _m("adadim/erank_z_norm", "normalized erank(Z)", "AdaDim's raw α before EMA and clipping"),
    # -- method=steer: the α controller, at each control step (a dynamics measurement) ---------
    _m("steer/setpoint", "setpoint of H(R) / I_excess(R;Z)", "the value dynamics/ratio_H_I is steered to at this step"),
    _m(
        "steer/error",
        "relative error",
        "(setpoint - dynamics/ratio_H_I) / setpoint; NaN when the ratio is NaN (α held)",
    ),
    _m(
        "steer/integral",
        "integral of the error",
        "the controller's summed relative error (anti-windup: frozen at a limit)",
    ),
    _m(
        "steer/direction",
        "steering direction",
        "+1: a larger α raises the ratio, -1: lowers it; 0 while steer.direction=auto is identifying",
    ),
    # -- gradient shares: each weighted term's gradient w.r.t. Z ------------------------------
    *(
        _m(f"adadim/grad_{kind}_{term}", f"{what} of {name}", f"{text} {name} w.r.t. Z, on the step's batch")
        for term, name in (
            ("dimension", "L_dim"),
            ("nt_xent", "NT-Xent"),
            ("mi", "the MI term"),
            ("byol", "BYOL's loss"),
        )
        for kind, what, text in (
            ("norm", "‖∇_Z‖", "norm of the gradient of the weighted"),
            ("share", "gradient share", "share of the summed gradient norms that comes from the weighted"),
        )
    ),
    *(
        _m(
            f"dynamics/floor_sd_{name}",
            f"noise floor SD of {what}",
            f"SD of {what} over dynamics.noise_floor_repeats fresh view draws of the final weights (noise_floor.json)",
            unit,
            x="",
        )
        for name, what, unit in (
            ("H_R", "H(R)", "nats"),
            ("I_RZ_excess", "I_excess(R;Z)", "nats"),
            ("ratio_H_I", "H(R) / I_excess", ""),
        )
    ),
    _m("dynamics/sigma_R", "σ_R", "Gaussian kernel width of R, fixed at the first measurement", x=""),
    _m("dynamics/sigma_Z", "σ_Z", "Gaussian kernel width of Z, fixed at the first measurement", x=""),
    # -- per-epoch evaluation ------------------------------------------------------------
    _m("eval/linear_top1", "online probe top-1", "online linear probe on the test split", x=EPOCH),
    _m("eval/knn_top1", "kNN top-1", "kNN (k = eval.knn_k, cosine) on the test split", x=EPOCH),
    _m("eval/lowlabel_top1", "low-label probe top-1", "low-label probe on the test split", x=EPOCH),
    # -- bookkeeping ---------------------------------------------------------------------
    _m(STEP, "optimizer step", "the optimizer step (W&B's step)"),
    _m(EPOCH, "epoch", "fractional epoch after this step"),
    _m("trainer/samples_per_s", "samples / s", "training throughput of this step"),
    _m("trainer/loop_seconds", "loop seconds", "wall time of the training loop", "s", x=""),
    _m("trainer/online_eval_seconds", "online eval seconds", "wall time of per-epoch evaluation", "s", x=""),
    _m(
        "trainer/measure_seconds",
        "measurement seconds",
        "wall time of probe forward passes, the monitor and gradient norms (inside the loop)",
        "s",
        x="",
    ),
    _m(
        "trainer/noise_floor_seconds",
        "noise floor seconds",
        "wall time of the end-of-run noise floor (dynamics.noise_floor_repeats)",
        "s",
        x="",
    ),
    _m("trainer/final_eval_seconds", "final eval seconds", "wall time of the final evaluation", "s", x=""),
)

# The evaluation protocol's summary keys: scores on test, on validation, and the random-init
# reference, for every probe.
_SCORES = {
    "lowlabel_top1": "low-label probe top-1 (k labelled images per class, mean over draws)",
    "lowlabel_top1_std": "std of the low-label probe over draws",
    "linear_top1": "full linear probe top-1",
    "knn_top1": "kNN top-1 (majority of k = eval.knn_k)",
    "knn_weighted_top1": "weighted kNN top-1 (Wu et al. 2018)",
}
_FINAL = tuple(
    _m(f"final/{prefix}{name}", f"{what.split(' (')[0]}", f"{where}{what}", x="")
    for prefix, where in (
        ("", ""),
        ("val_", "validation split: "),
        ("random_init_", "random-init backbone: "),
        ("random_init_val_", "random-init backbone, validation split: "),
    )
    for name, what in _SCORES.items()
)

REGISTRY: dict[str, Metric] = {m.key: m for m in (*_ALL, *_FINAL)}
# Families of keys whose suffix depends on configuration (k of the low-label probe).
PATTERNS: tuple[str, ...] = ("final/lowlabel_top1_k*", "final/*lowlabel_top1_k*", "final/lowlabel_draws")

SECTIONS = ("dynamics", "train", "adadim", "steer", "eval", "final", "trainer")


def is_registered(key: str) -> bool:
    return key in REGISTRY or any(fnmatch.fnmatchcase(key, p) for p in PATTERNS)


def metric(key: str) -> Metric:
    """The registry entry of ``key``; KeyError naming the key when it is not registered."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"{key!r} is not a registered metric (see adadim.dynamics.keys)") from None


def label(key: str, normalized: bool = False) -> str:
    """Axis label of a key (the key itself when unregistered); ``normalized`` for values / log N."""
    text = REGISTRY[key].label if key in REGISTRY else key
    return text.replace("[nats]", "/ log N") if normalized else text


def in_section(section: str) -> list[str]:
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
    return [k for k in REGISTRY if k.startswith(section + "/")]


def in_nats(key: str) -> bool:
    return key in REGISTRY and REGISTRY[key].unit == "nats"
