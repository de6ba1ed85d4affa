"""`adadim study`: the reproduction study, a local sweep followed by every analysis study.

It sits in the top layer because it drives both the sweeps (which start trainer processes)
and the analysis of their runs.
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(commands, name: str = "study", help_text: str = "") -> None:
    study = commands.add_parser(name, help=help_text, description=help_text)
    study.add_argument("--file", default="study-digits", help="the sweep to run (default: sweeps/study-digits.yaml)")
    study.add_argument("--root", default="runs/sweeps")
    study.add_argument("--out", default="study")
    study.add_argument("--parallel", type=int, default=1)
    study.add_argument("--resamples", type=int, default=2000)
    study.add_argument("overrides", nargs="*", help="key=value added to every trial")


def run(args) -> int:
    """Run sweeps/study-digits.yaml (or --file) locally, then every analysis study, then the
    table of final accuracies per method (mean and std over seeds)."""
    from adadim.analysis.report import AnalysisOptions, analyze, write_table
    from adadim.analysis.studies import accuracy_table

    from .local import LocalSweep
    from .spec import SweepError, load_sweep

    try:
        sweep = load_sweep(args.file)
        runner = LocalSweep(sweep, Path(args.root), max(1, args.parallel), None, 0, list(args.overrides))
        code = runner.run()
    except (SweepError, OSError) as error:  # a refused sweep file, an unwritable --root
        print(f"adadim study: {error}", file=sys.stderr)
        return 2
    print(runner.report())
    if code == 130:
        return code
    source = Path(args.root) / runner.sweep.name
    try:
        result = analyze(source, args.out, AnalysisOptions(by="method", n_resamples=args.resamples, progress=False))
    except (ValueError, OSError) as error:  # no usable runs, an unwritable --out
        print(f"adadim study: analysis: {error}", file=sys.stderr)
        return 2
    keys = ["final/linear_top1", "final/lowlabel_top1", "final/knn_top1", "final/knn_weighted_top1"]
    keys += [f"final/random_init_{k[6:]}" for k in keys]
    table = accuracy_table(result.runset, [k for k in keys if k in result.runset.runs], by="method")
    write_table(table.reset_index(), Path(args.out) / "tables", "results")
    print(f"study: {len(result.runset)} runs analysed -> {args.out}/report.html, {args.out}/tables/results.md")
    return code
