"""A saved W&B workspace view for adadim runs, built by code with ``wandb-workspaces``.

Sections, in order: representation dynamics, loss terms / weights / gradient shares (against
``trainer/step``), steering (method=steer's setpoint drawn over the ratio it steers, and the
controller's error, integral and direction), evaluation during training (against
``trainer/epoch``), final scores (bars
by group), and the information plane with the ratio against accuracy (scatter panels). Lines
are grouped (``--group-by``) with a mean line and a band. Every key comes from the metric
registry through `panel_keys`, so a renamed key cannot leave a dead panel.

Saving needs a W&B server; everything up to the request (the view and its JSON spec) is built
and checked offline.
"""

from __future__ import annotations

import json
import warnings

from adadim.dynamics import keys

from . import panel_keys
from .runset import DEFAULT_ACCURACY

BANDS = ("minmax", "stddev", "stderr")


def _library():
    """wandb-workspaces' panel and workspace modules. Importing them warns about pydantic V1
    validators inside the library, nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import wandb_workspaces.reports.v2 as wr
            import wandb_workspaces.workspaces as ws
            from wandb_workspaces import expr
        except ImportError:
            raise ValueError(
                "the W&B workspace needs wandb-workspaces (and wandb >= 0.28.2): pip install 'adadim[workspace]'"
            ) from None
    return wr, ws, expr


def _groupby(by: str):
    """The W&B grouping of ``by``: the run group, or a config key. The trainer logs its config
    flattened to dotted keys (``run.seed``), which W&B stores as ``{"run.seed": {"value": ..}}``,
    so a dotted key is spelled with ``.value`` at its end."""
    expr = _library()[2]
    if by.lower() == "group":
        return "Group", expr.Metric("Group")
    backend = f"config.{by}.value"
    return backend, expr.Config(f"{by}.value")


def build_workspace(
    entity: str,
    project: str,
    name: str = "adadim dynamics",
    by: str = "group",
    band: str = "minmax",
    accuracy: str = DEFAULT_ACCURACY,
):
    """The workspace view (not saved). ``by``: ``group`` or a config key such as ``method``."""
    wr, ws, _ = _library()
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; choose from {', '.join(BANDS)}")
    keys.metric(accuracy)
    group_key, runset_group = _groupby(by)
    grouped = {"groupby": group_key, "groupby_aggfunc": "mean", "groupby_rangefunc": band}

    def line(key: str, **extra):
        x = panel_keys.x_axis(key)
        settings = {"title": keys.label(key), "y": [key], "title_x": keys.label(x), **grouped, **extra}
        return wr.LinePlot(x=x, **settings)

    sections = []
    for section in panel_keys.sections():
        if section.kind == "bar":
            panels = [
                wr.BarPlot(title=keys.label(k), metrics=[wr.SummaryMetric(k)], orientation="v", **grouped)
                for k in section.keys
            ]
        else:
            panels = [
                line(host, title=f"{keys.label(host)} and its {over.rsplit('/', 1)[-1]}", y=[host, over])
                for over, host in panel_keys.OVERLAYS.items()
                if over in section.keys
            ]
            panels += [line(k, title_y=keys.label(k)) for k in section.keys]
            panels += [
                wr.LinePlot(
                    title=p,
                    x=keys.STEP,
                    metric_regex=panel_keys.pattern_regex(p),
                    title_x=keys.label(keys.STEP),
                    **grouped,
                )
                for p in section.patterns
            ]
        sections.append(ws.Section(name=section.title, panels=panels, is_open=True))
    h, ratio = panel_keys.PLANE_X, panel_keys.RATIO
    # A line plot with H(R) as its x axis draws each run's path through the plane.
    planes = [
        wr.LinePlot(
            title=f"information plane: {keys.label(i)}",
            x=h,
            y=[i],
            title_x=keys.label(h),
            title_y=keys.label(i),
            groupby=group_key,
        )
        for i in panel_keys.plane_ys()
    ]
    i = panel_keys.plane_ys()[0]
    scatters = [
        wr.ScatterPlot(
            title=f"{keys.label(ratio)} against {keys.label(accuracy)} (last logged values)",
            x=wr.SummaryMetric(ratio),
            y=wr.SummaryMetric(accuracy),
        ),
        wr.ScatterPlot(title="information plane, last logged values", x=wr.SummaryMetric(h), y=wr.SummaryMetric(i)),
    ]
    sections.append(ws.Section(name="Information plane and accuracy", is_open=True, panels=planes + scatters))
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=sections,
        auto_generate_panels=False,
        settings=ws.WorkspaceSettings(x_axis=keys.STEP, max_runs=100, group_by_prefix="first"),
        runset_settings=ws.RunsetSettings(groupby=[runset_group]),
    )


def workspace_spec(workspace) -> dict:
    """The JSON document `Workspace.save()` sends (the view without server-assigned ids)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def spec_keys(spec: dict) -> dict[str, set[str]]:
    """The run keys a serialized workspace refers to: ``history`` (line-plot metrics and x
    axes), ``summary`` (bar and scatter metrics), ``regex`` (line-plot metric patterns),
    ``group`` (the grouping keys, as W&B spells them)."""
    found: dict[str, set[str]] = {"history": set(), "summary": set(), "regex": set(), "group": set()}
    for section in spec["spec"]["section"]["panelBankConfig"]["sections"]:
        for panel in section["panels"]:
            config, kind = panel["config"], panel["viewType"]
            if config.get("groupBy"):
                found["group"].add(config["groupBy"])
            if kind == "Run History Line Plot":
                found["history"].update(config.get("metrics", []))
                found["history"].add(config["xAxis"])
                if config.get("useMetricRegex"):
                    found["regex"].add(config["metricRegex"])
            elif kind == "Bar Chart":
                found["summary"].update(m.removeprefix("summary_metrics.") for m in config["metrics"])
            elif kind == "Scatter Plot":
                found["summary"].update(config[a].removeprefix("summary:") for a in ("xAxis", "yAxis"))
            else:
                raise ValueError(f"unexpected panel type {kind!r}")
    return found


def spec_json(workspace) -> str:
    return json.dumps(workspace_spec(workspace), indent=2, sort_keys=True)


def save(workspace) -> str:
    """Save the view to the W&B server (needs a login) and return its URL."""
    workspace.save()
    return workspace.url
