"""Figures in one publication style (seaborn "paper" context, ticks, embedded TrueType fonts).

Every function draws from a tidy DataFrame, saves ``<name>.pdf`` and ``<name>.png`` under
the output folder, and returns the data it drew, so a test can compare it with the tables.
"""

from __future__ import annotations

from pathlib import Path


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from adadim.dynamics.keys import label as registry_label

def label(key: str, normalized: bool = False) -> str:
    return registry_label(key, normalized)


def set_style(style: str = "paper") -> None:
    sns.set_theme(context=style, style="ticks", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 200, "figure.dpi": 100})


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_trajectories(
    traj: pd.DataFrame,
    out: Path,
    by: str = "group",
    x_label: str = "trainer/step",
    log_x: bool = False,
    normalized: bool = False,
    name: str = "trajectories",
) -> pd.DataFrame:
    metrics = list(dict.fromkeys(traj["metric"]))
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        part = traj[traj["metric"] == metric]
        for group, g in part.groupby(by):
            g = g.sort_values("x")
            ax.plot(g["x"], g["mean"], label=str(group))
            if g["ci_low"].notna().any():
                ax.fill_between(g["x"], g["ci_low"], g["ci_high"], alpha=0.25, linewidth=0)
        ax.set_ylabel(label(metric, normalized))
        ax.set_xlabel(label(x_label))
        if log_x:
            ax.set_xscale("symlog", linthresh=1)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(6, len(labels)), frameon=False, bbox_to_anchor=(0.5, 1.02))
    sns.despine(fig)
    fig.tight_layout()
    _save(fig, out, name)
    return traj


def plot_information_plane(
    points: pd.DataFrame, out: Path, by: str = "group", name: str = "information_plane"
) -> pd.DataFrame:
    """I(R;Z) against H(R) per run, coloured by training progress, one panel per group."""
    groups = sorted(points[by].unique())
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.4), squeeze=False, sharex=True, sharey=True)
    scatter = None
    for ax, group in zip(axes.flat, groups, strict=True):
        part = points[points[by] == group]
        for _, run in part.groupby("run_id"):
            run = run.sort_values("progress")
            ax.plot(run["H_R"], run["I_RZ"], color="0.8", linewidth=0.6, zorder=1)
            scatter = ax.scatter(
                run["H_R"], run["I_RZ"], c=run["progress"], cmap="viridis", vmin=0, vmax=1, s=9, zorder=2
            )
        ax.set_title(str(group))
        ax.set_xlabel(label("dynamics/H_R"))
    axes.flat[0].set_ylabel(label("dynamics/I_RZ"))
    if scatter is not None:
        fig.colorbar(scatter, ax=axes.ravel().tolist(), label="training progress")
    sns.despine(fig)
    _save(fig, out, name)
    return points


def plot_ratio_vs_accuracy(
    data: pd.DataFrame, table: pd.DataFrame, out: Path, x: str, accuracy: str, name: str = "ratio_vs_accuracy"
) -> pd.DataFrame:
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    sns.scatterplot(data=data, x="x", y="y", hue="group", ax=ax, s=36)
    pooled = table[(table["scope"] == "pooled") & (table["method"] == "spearman")]
    if len(pooled):
        r = pooled.iloc[0]
        ax.set_title(f"Spearman ρ = {r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}], n = {int(r['n'])}")
    ax.set_xlabel(label(x) + " (equilibrium)")
    ax.set_ylabel(label(accuracy))
    sns.despine(fig)
    _save(fig, out, name)
    return data


def plot_optimum(
    data: pd.DataFrame, fits: pd.DataFrame, out: Path, accuracy: str, name: str = "intermediate_optimum"
) -> pd.DataFrame:
    keys = list(fits["x"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.5), squeeze=False)
    for ax, (_, fit) in zip(axes.flat, fits.iterrows(), strict=True):
        ax.scatter(data[fit["x"]], data["y"], s=24, color="C0")
        if np.isfinite(fit["c2"]):
            grid = np.linspace(fit["x_min"], fit["x_max"], 200)
            ax.plot(grid, fit["c0"] + fit["c1"] * grid + fit["c2"] * grid**2, color="C1")
            if np.isfinite(fit["vertex"]):
                ax.axvline(fit["vertex"], color="C3", linestyle="--", linewidth=1)
                if np.isfinite(fit["ci_low"]):
                    ax.axvspan(fit["ci_low"], fit["ci_high"], color="C3", alpha=0.12, linewidth=0)
        ax.set_xlabel(label(fit["x"]) + " (equilibrium)")
        ax.set_ylabel(label(accuracy))
    sns.despine(fig)
    _save(fig, out, name)
    return data


def plot_coupling(changes: pd.DataFrame, windows: dict, out: Path, name: str = "coupling") -> pd.DataFrame:
    fig, axes = plt.subplots(1, len(windows), figsize=(4.2 * len(windows), 3.5), squeeze=False, sharey=True)
    for ax, (window, (lo, hi)) in zip(axes.flat, windows.items(), strict=True):
        part = (
            changes[(changes["progress"] > lo) & (changes["progress"] <= hi)]
            if lo > 0
            else changes[changes["progress"] <= hi]
        )
        ax.scatter(part["dH"], part["dI"], s=10, alpha=0.6)
        ax.axhline(0, color="0.6", linewidth=0.8)
        ax.axvline(0, color="0.6", linewidth=0.8)
        ax.set_title(f"{window}: progress {lo:.0%}–{hi:.0%}")
        ax.set_xlabel("ΔH(R) per measurement [nats]")
    axes.flat[0].set_ylabel("ΔI(R;Z) per measurement [nats]")
    sns.despine(fig)
    _save(fig, out, name)
    return changes
