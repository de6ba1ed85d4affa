"""`adadim analyze SOURCE --out DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

from .runset import DEFAULT_ACCURACY, STUDIES


def add_parser(commands, name: str = "analyze", help_text: str = "") -> None:
    p = commands.add_parser(name, help=help_text, description=help_text)
    p.add_argument("source", help="a runs folder, a run folder, W&B offline files or folder, or entity/project")
    p.add_argument("--out", required=True, help="output folder (figures/, tables/, report.html)")
    p.add_argument("--studies", default=",".join(STUDIES), help=f"comma list from {','.join(STUDIES)}")
    p.add_argument(
        "--group-by",
        default="auto",
        help="run column that defines groups (auto: group when runs differ in it, else method)",
    )
    p.add_argument("--groups", default="", help="comma list of groups to keep")
    p.add_argument(
        "--accuracy-key", default=DEFAULT_ACCURACY, help=f"summary key to correlate with (default {DEFAULT_ACCURACY})"
    )
    p.add_argument("--window", type=float, default=0.2, help="equilibrium window: last fraction of logged points")
    p.add_argument("--x", choices=["step", "epoch"], default="step", help="trajectory x axis")
    p.add_argument("--smooth", type=int, default=1, help="rolling mean over this many logged points")
    p.add_argument("--log-x", action="store_true")
    p.add_argument("--normalize", action="store_true", help="divide entropies and MI by log N")
    p.add_argument("--early", default="0,0.3", help="early coupling window, as progress from,to")
    p.add_argument("--late", default="0.7,1", help="late coupling window")
    p.add_argument("--style", default="paper", choices=["paper", "notebook", "talk", "poster"])
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap and permutation resamples")
    p.add_argument("--include-unfinished", action="store_true")
    p.add_argument(
        "--keys",
        default=None,
        help="key map (YAML, our key: their key) of runs from other trainers, e.g. final/lowlabel_top1: val_acc",
    )
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", default="auto", help="folder of the parsed-run cache (default: beside the runs)")
    cache.add_argument("--no-cache", action="store_true", help="parse every run, write no cache")
    p.add_argument("--wandb-project", default="", help="also log the analysis as a W&B run (job_type analysis)")
    p.add_argument("--wandb-entity", default=None, help="W&B entity of that run")
    p.add_argument("--wandb-mode", default="offline", choices=["offline", "online", "disabled"])


def _window(text: str, option: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        lo = hi = float("nan")
    if not 0 <= lo < hi <= 1:  # NaN fails too
        raise ValueError(f"{option} {text!r} must be 'from,to' with 0 <= from < to <= 1, e.g. 0,0.3")
    return lo, hi


def _check_out(out: str) -> None:
    """Refuse an --out that cannot be written before any run is loaded."""
    from .run_cache import unwritable

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    reason = unwritable(path, create=False)
    if reason:
        raise ValueError(f"--out {out} cannot be written: {reason}")


def run(args) -> int:
    from .report import AnalysisOptions, analyze

    try:
        studies = tuple(s for s in args.studies.split(",") if s)
        unknown = [s for s in studies if s not in STUDIES]
        if unknown:
            raise ValueError(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
        if not 0 < args.window <= 1:
            raise ValueError(f"--window must be in (0, 1], got {args.window}")
        opts = AnalysisOptions(
            studies=studies,
            by=args.group_by,
            accuracy=args.accuracy_key,
            window=args.window,
            x="trainer/step" if args.x == "step" else "trainer/epoch",
            smooth=max(1, args.smooth),
            log_x=args.log_x,
            normalize=args.normalize,
            style=args.style,
            early=_window(args.early, "--early"),
            late=_window(args.late, "--late"),
            n_resamples=args.resamples,
            groups=tuple(g for g in args.groups.split(",") if g),
            include_unfinished=args.include_unfinished,
            progress=sys.stderr.isatty(),
            cache_dir=None if args.no_cache else args.cache_dir,
            keys=args.keys,
        )
        _check_out(args.out)
        result = analyze(args.source, args.out, opts)
    except (ValueError, KeyError, OSError) as error:  # bad options, no usable runs, unreadable source or --out
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"adadim analyze: {message}", file=sys.stderr)
        return 2
    assert result.runset is not None  # analyze always sets it
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"analyzed {len(result.runset)} runs -> {args.out}/report.html ({len(result.tables)} tables)")
    if args.wandb_project:
        from .wandb_export import log_from_cli

        return log_from_cli(result, args)
    return 0
