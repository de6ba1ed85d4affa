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

from .panel_keys import OVERLAYS


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
    """One panel per metric, a mean line and 95% band per group. A key of ``OVERLAYS`` whose
    host metric is drawn too (``steer/setpoint`` over ``dynamics/ratio_H_I``) goes on the host's
    panel as a dashed line in its group's colour, not on a panel of its own."""
    present = list(dict.fromkeys(traj["metric"]))
    overlaid = {k: host for k, host in OVERLAYS.items() if k in present and host in present}
    metrics = [m for m in present if m not in overlaid]
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    # One colour per group across every panel: a group without some metric (BYOL has no α) must
    # not shift the others' colours on that panel.
    groups = sorted(traj[by].dropna().unique(), key=str)
    # The theme's palette has 10 colours; more groups get evenly spaced hues, none repeated.
    palette = sns.color_palette(n_colors=len(groups)) if len(groups) <= 10 else sns.color_palette("husl", len(groups))
    colours = {group: palette[i] for i, group in enumerate(groups)}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        part = traj[traj["metric"] == metric]
        for group, g in part.groupby(by):
            g = g.sort_values("x")
            ax.plot(g["x"], g["mean"], label=str(group), color=colours[group])
            if g["ci_low"].notna().any():
                ax.fill_between(g["x"], g["ci_low"], g["ci_high"], alpha=0.25, linewidth=0, color=colours[group])
        for key in (k for k, host in overlaid.items() if host == metric):
            for group, g in traj[traj["metric"] == key].groupby(by):
                g = g.sort_values("x")
                ax.plot(g["x"], g["mean"], linestyle="--", linewidth=1, color=colours.get(group, "0.3"))
            ax.legend(
                handles=[plt.Line2D([], [], linestyle="--", linewidth=1, color="0.3", label=label(key))],
                frameon=False,
                fontsize="small",
            )
        ax.set_ylabel(label(metric, normalized))
        ax.set_xlabel(label(x_label))
        if log_x:
            ax.set_xscale("symlog", linthresh=1)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=colours[group], label=str(group)) for group in groups]
    ncol = min(8, len(handles))  # one row for up to eight groups
    fig.legend(handles=handles, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 1.02))
    sns.despine(fig)
    fig.tight_layout()
    _save(fig, out, name)
    return traj


def plot_information_plane(
    points: pd.DataFrame, out: Path, by: str = "group", name: str = "information_plane"
) -> pd.DataFrame:
    """I(R;Z)'s excess over its permutation null (I(R;Z) itself for runs that did not log it)
    against H(R) per run, coloured by training progress, one panel per group."""
    y = "I_RZ_excess" if "I_RZ_excess" in points and points["I_RZ_excess"].notna().any() else "I_RZ"
    groups = sorted(points[by].unique())
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.4), squeeze=False, sharex=True, sharey=True)
    scatter = None
    for ax, group in zip(axes.flat, groups, strict=True):
        part = points[points[by] == group]
        for _, run in part.groupby("run_id"):
            run = run.sort_values("progress")
            ax.plot(run["H_R"], run[y], color="0.8", linewidth=0.6, zorder=1)
            scatter = ax.scatter(run["H_R"], run[y], c=run["progress"], cmap="viridis", vmin=0, vmax=1, s=9, zorder=2)
        ax.set_title(str(group))
        ax.set_xlabel(label("dynamics/H_R"))
    axes.flat[0].set_ylabel(label(f"dynamics/{y}"))
    if scatter is not None:
        fig.colorbar(scatter, ax=axes.ravel().tolist(), label="training progress")
    sns.despine(fig)
    _save(fig, out, name)
    return points


def plot_ratio_accuracy(
    data: pd.DataFrame, table: pd.DataFrame, out: Path, x: str, accuracy: str, name: str = "ratio_accuracy"
) -> pd.DataFrame:
    """Equilibrium x against accuracy per run, coloured by group, with the group means; the
    title gives the primary test (random-intercept slope)."""
    fig, ax = plt.subplots(figsize=(4.8, 3.7))
    sns.scatterplot(data=data, x="x", y="y", hue="group", ax=ax, s=36)
    means = data.groupby("group")[["x", "y"]].mean()
    ax.scatter(means["x"], means["y"], marker="x", color="0.2", s=40, label="group mean")
    # Beside the axes: with a dozen groups a legend inside would hide the runs.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small", title="group")
    primary = table[table["statistic"] == "slope"]
    if len(primary) and np.isfinite(primary.iloc[0]["p_value"]):
        r = primary.iloc[0]
        ax.set_title(f"slope {r['estimate']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}], p = {r['p_value']:.2g}")
    ax.set_xlabel(label(x) + " (equilibrium)")
    ax.set_ylabel(label(accuracy))
    sns.despine(fig)
    _save(fig, out, name)
    return data


def plot_optimum(data: dict, fits: pd.DataFrame, out: Path, accuracy: str, name: str = "optimum") -> dict:
    """Accuracy against each equilibrium x: the runs, the two lines of the primary test (each
    drawn with its slope through the centroid of its side of the breakpoint) and, dashed, the
    descriptive quadratic."""
    primary = fits[fits["scope"] == fits["scope"].iloc[0]]
    fig, axes = plt.subplots(1, len(primary), figsize=(4.6 * len(primary), 3.6), squeeze=False)
    for ax, (_, fit) in zip(axes.flat, primary.iterrows(), strict=True):
        points = data[fit["x"]]
        ax.scatter(points["x"], points["y"], s=24, color="C0")
        grid = np.linspace(fit["x_min"], fit["x_max"], 200)
        if np.isfinite(fit["quadratic_c2"]):
            curve = fit["quadratic_c0"] + fit["quadratic_c1"] * grid + fit["quadratic_c2"] * grid**2
            ax.plot(grid, curve, color="0.6", linestyle="--", linewidth=1, label="quadratic (descriptive)")
        xc = fit["breakpoint"]
        if np.isfinite(fit["b1"]) and np.isfinite(fit["b2"]):
            for side, slope, color in ((points["x"] <= xc, fit["b1"], "C2"), (points["x"] >= xc, fit["b2"], "C3")):
                xs, ys = points.loc[side, "x"], points.loc[side, "y"]
                span = np.array([xs.min(), xs.max()])
                ax.plot(span, ys.mean() + slope * (span - xs.mean()), color=color, linewidth=2)
            ax.axvline(xc, color="0.4", linestyle=":", linewidth=1)
            ax.set_title(f"two lines: p = {fit['p_value']:.2g} (Holm {fit['p_holm']:.2g})")
        ax.set_xlabel(label(fit["x"]) + " (equilibrium)")
        ax.set_ylabel(label(accuracy))
    sns.despine(fig)
    _save(fig, out, name)
    return data


def plot_coupling(
    changes: pd.DataFrame, per_run: pd.DataFrame, windows: dict, out: Path, name: str = "coupling"
) -> pd.DataFrame:
    """ΔH(R) against ΔI_excess in each window, and each run's coupling r early, late and at
    its noise floor."""
    fig, axes = plt.subplots(1, len(windows) + 1, figsize=(4.2 * (len(windows) + 1), 3.5), squeeze=False)
    for ax, (window, (lo, hi)) in zip(axes.flat, windows.items(), strict=False):
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
        ax.set_ylabel("ΔI_excess per measurement [nats]")
    ax = axes.flat[-1]
    positions = np.arange(3)
    for _, run in per_run.iterrows():
        ax.plot(positions, [run["r_early"], run["r_late"], run["r_floor"]], color="0.7", marker="o", markersize=3)
    ax.set_xticks(positions, ["early", "late", "noise floor"])
    ax.axhline(0, color="0.6", linewidth=0.8)
    ax.set_ylabel("r(ΔH(R), ΔI_excess) per run")
    sns.despine(fig)
    fig.tight_layout()
    _save(fig, out, name)
    return changes


def plot_steering(data: pd.DataFrame, out: Path, name: str = "steering") -> pd.DataFrame:
    """One column per steered arm: on top the measured ratio of its runs (colour) against their
    setpoint (dashed) and the runs of the arm they were steered to (grey); below, their α.
    ``data``: rows (arm, role, run_id, step, ratio, setpoint, alpha), role "steered" or "source"."""
    arms = list(dict.fromkeys(data.loc[data["role"] == "steered", "arm"]))
    if not arms:
        raise KeyError("no steered runs to draw")
    fig, axes = plt.subplots(2, len(arms), figsize=(4.2 * len(arms), 5.2), squeeze=False, sharex=True)
    colours = sns.color_palette("colorblind")
    for col, arm in enumerate(arms):
        top, bottom = axes[0, col], axes[1, col]
        part = data[data["arm"] == arm]
        for _, run in part[part["role"] == "source"].groupby("run_id"):
            top.plot(run["step"], run["ratio"], color="0.7", linewidth=1.0, zorder=1)
            bottom.plot(run["step"], run["alpha"], color="0.7", linewidth=1.0, zorder=1)
        for k, (_, run) in enumerate(part[part["role"] == "steered"].groupby("run_id")):
            colour = colours[k % len(colours)]
            top.plot(run["step"], run["ratio"], color=colour, linewidth=1.2, zorder=3)
            top.plot(run["step"], run["setpoint"], color=colour, linewidth=1.0, linestyle="--", zorder=2)
            bottom.plot(run["step"], run["alpha"], color=colour, linewidth=1.2, zorder=3)
        top.set_title(str(arm), fontsize="medium")
        top.set_ylabel(label("dynamics/ratio_H_I") if col == 0 else "")
        bottom.set_ylabel(label("adadim/alpha") if col == 0 else "")
        bottom.set_xlabel(label("trainer/step"))
        bottom.set_ylim(-0.05, 1.05)
    axes[0, 0].plot([], [], color="0.3", linestyle="--", label="setpoint")
    axes[0, 0].plot([], [], color="0.7", label="source runs")
    axes[0, 0].legend(frameon=False, fontsize="small")
    sns.despine(fig)
    _save(fig, out, name)
    return data
