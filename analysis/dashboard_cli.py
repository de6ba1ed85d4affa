"""`adadim dashboard wandb ENTITY/PROJECT` and `adadim dashboard local SOURCE --out FILE`."""

from __future__ import annotations

import sys

from .runset import DEFAULT_ACCURACY


def add_parser(commands, name: str = "dashboard", help_text: str = "") -> None:
    p = commands.add_parser(name, help=help_text, description=help_text)
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    w = kinds.add_parser("wandb", help="save a W&B workspace view of a project (sections from the metric registry)")
    w.add_argument("project", metavar="ENTITY/PROJECT")
    w.add_argument("--name", default="adadim dynamics", help="the view's name")
    w.add_argument("--group-by", default="group", help="'group' (the W&B run group) or a config key, e.g. method")
    w.add_argument("--band", default="minmax", choices=("minmax", "stddev", "stderr"), help="band around group means")
    w.add_argument("--accuracy-key", default=DEFAULT_ACCURACY, help="summary key of the ratio-vs-accuracy scatter")
    w.add_argument("--dry-run", action="store_true", help="print the workspace spec as JSON and save nothing")
    w.add_argument("--url", action="store_true", help="print only the saved view's URL")

    local = kinds.add_parser("local", help="write one self-contained interactive HTML page (no server, no internet)")
    local.add_argument("source", help="a runs folder, a run folder, W&B offline files or folder, or entity/project")
    local.add_argument("--out", default="dashboard.html", help="the HTML file to write")
    local.add_argument("--group-by", default="auto", help="run column that defines groups (auto: as adadim analyze)")
    local.add_argument("--accuracy-key", default=DEFAULT_ACCURACY, help="the scatter's default accuracy key")
    local.add_argument("--window", type=float, default=0.2, help="equilibrium window: last fraction of logged points")
    local.add_argument("--include-unfinished", action="store_true")
    local.add_argument("--keys", default=None, help="key map (YAML, our key: their key) for runs from other trainers")


def _split_project(text: str) -> tuple[str, str]:
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"expected ENTITY/PROJECT, got {text!r}")
    return parts[0], parts[1]


def run_wandb(args) -> int:
    from . import workspace

    entity, project = _split_project(args.project)
    view = workspace.build_workspace(entity, project, args.name, args.group_by, args.band, args.accuracy_key)
    if args.dry_run:
        print(workspace.spec_json(view))
        return 0
    try:
        url = workspace.save(view)
    except Exception as error:  # wandb raises many kinds (no login, no network, permissions)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"adadim dashboard wandb: could not save to W&B: {first} (--dry-run needs no server)", file=sys.stderr)
        return 1
    if args.url:
        print(url)
    else:
        panels = sum(len(s.panels) for s in view.sections)
        print(f"saved W&B workspace {args.name!r}: {len(view.sections)} sections, {panels} panels -> {url}")
    return 0


def run_local(args) -> int:
    from .dashboard import build_dashboard
    from .loading import load_runs

    rs = load_runs(
        args.source, include_unfinished=args.include_unfinished, progress=sys.stderr.isatty(), keys=args.keys
    )
    if len(rs) == 0:
        reasons = "; ".join(f"{k}: {r}" for k, r in rs.skipped[:5])
        raise ValueError(f"no usable runs in {args.source}" + (f" ({reasons})" if reasons else ""))
    info = build_dashboard(rs, args.out, args.group_by, args.accuracy_key, args.window, source=str(args.source))
    print(
        f"dashboard of {info.runs} run{'s' * (info.runs != 1)} -> {info.path} ({info.bytes / 2**20:.1f} MiB; "
        f"{info.drawn_points:,} of {info.logged_points:,} logged points drawn, {info.factor:.1f}x fewer)"
    )
    return 0


def run(args) -> int:
    try:
        return run_wandb(args) if args.kind == "wandb" else run_local(args)
    except (ValueError, KeyError, FileNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"adadim dashboard {args.kind}: {message}", file=sys.stderr)
        return 2
