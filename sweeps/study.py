"""`adadim study`: the reproduction study, local sweeps followed by every analysis study.

A study is a list of sweep files (`STUDIES`), each a plain W&B sweep that can also run online.
digits and cifar10 (ResNet-18) have four: the methods × 5 seeds (seven on digits, BYOL
included; six on cifar10), a fixed-α ladder, AdaDim's MI term, and AdaDim with gradient
balancing. cifar10-cpu has three: five methods × 3 seeds at the cifar10-cpu config, fixed
α = 0.5 × 3 seeds at the lr its round chose, and a fixed-α ladder of four rungs × 1 seed; 4 to
13 hours on a 2-core CPU, by the machine. Their runs are analysed together, grouped by arm (the
method and its variant): runs of one arm differ only by seed, so the arm is the unit the
statistics count.

It sits in the top layer because it drives both the sweeps (which start trainer processes)
and the analysis of their runs, and scores raw pixels with the training package's protocol.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

PARTS = ("", "-alpha", "-mi", "-balance")
STUDIES = {name: tuple(f"study-{name}{part}" for part in PARTS) for name in ("digits", "cifar10")}
STUDIES["cifar10-cpu"] = ("study-cifar10-cpu", "study-cifar10-cpu-fixed", "study-cifar10-cpu-alpha")
STUDY_DIGITS = STUDIES["digits"]
# The figures a results folder shows, from the analysis of all arms (or, for the first two, of the
# first sweep's six methods: one line per method stays readable).
METHOD_FIGURES = ("trajectories", "information_plane")
ALL_FIGURES = ("ratio_accuracy", "coupling", "optimum")


def add_parser(commands, name: str = "study", help_text: str = "") -> None:
    study = commands.add_parser(name, help=help_text, description=help_text)
    study.add_argument(
        "--study",
        choices=sorted(STUDIES),
        default="digits",
        help="the study whose sweeps run: sweeps/study-digits*.yaml, study-cifar10{,-alpha,-mi,-balance}.yaml, "
        "or study-cifar10-cpu{,-fixed,-alpha}.yaml",
    )
    study.add_argument("--file", action="append", help="run these sweeps instead of --study's (repeat for several)")
    study.add_argument("--root", default="runs/sweeps")
    study.add_argument("--out", default="study")
    study.add_argument(
        "--results",
        help="also write the results tables and figures here, e.g. results/study-digits (default: <out>/results)",
    )
    study.add_argument(
        "--readme",
        action="append",
        help="replace the <!-- results/[<folder>/]<file> --> blocks of this Markdown file with the new tables "
        "(repeat for several files)",
    )
    study.add_argument("--parallel", type=int, default=1)
    study.add_argument("--resamples", type=int, default=2000)
    study.add_argument("overrides", nargs="*", help="key=value added to every trial")


def _raw_pixels(config: str | None, overrides: list[str]) -> dict | None:
    """The evaluation protocol on the images themselves, for the accuracy table's first row."""
    from adadim.training.config import ConfigError, load_config
    from adadim.training.offline_eval import evaluate

    try:
        return evaluate(load_config(config or "digits", overrides), None)
    except (ConfigError, FileNotFoundError) as error:  # a dataset that is not on disk
        print(f"adadim study: raw-pixel row left out: {error}", file=sys.stderr)
        return None


def update_readme(readme: Path, tables: list[Path]) -> list[str]:
    """Each ``<!-- results/[FOLDER/]NAME -->`` ... ``<!-- /results/[FOLDER/]NAME -->`` block of
    ``readme`` becomes the content of the table file NAME; returns the names replaced. Other text
    is untouched."""
    text = readme.read_text()
    replaced = []
    for table in tables:
        name = re.escape(table.name)
        pattern = re.compile(rf"(<!-- results/((?:[\w.-]+/)*){name} -->\n).*?(<!-- /results/\2{name} -->)", re.S)
        body = table.read_text()

        def keep_tags(m: re.Match[str], b: str = body) -> str:
            return m[1] + b + m[3]

        text, count = pattern.subn(keep_tags, text)
        if count:
            replaced.append(table.name)
    readme.write_text(text)
    return replaced


def _copy_figures(figures: Path, folder: Path, names) -> None:
    for name in names:
        if (figures / f"{name}.png").is_file():
            shutil.copyfile(figures / f"{name}.png", folder / f"{name}.png")


def run(args) -> int:
    """Run the study's sweeps locally (a rerun skips finished trials), then every analysis study
    over all their runs, then the results folder: accuracy, claims and gradient-share tables,
    and the figures."""
    from .runner_lock import hold_runner_lock
    from .spec import SweepError, load_sweep

    started = time.perf_counter()
    files = args.file or list(STUDIES[args.study])
    try:
        sweeps = [load_sweep(f) for f in files]  # every file checked before anything runs
        lock = hold_runner_lock(Path(args.root), "study root")
    except (SweepError, OSError) as error:  # a refused sweep file, an unwritable --root, another study
        print(f"adadim study: {error}", file=sys.stderr)
        return 2
    try:
        return _run_locked(args, sweeps, started)
    finally:
        lock.release()


def _run_locked(args, sweeps, started: float) -> int:
    from adadim.analysis.report import AnalysisOptions, analyze, run_studies
    from adadim.analysis.study_results import mixed_arms, mixed_provenance, write_results

    from .local import LocalSweep
    from .spec import SweepError

    sources, code, config = [], 0, None
    try:
        for sweep in sweeps:
            runner = LocalSweep(sweep, Path(args.root), max(1, args.parallel), None, 0, list(args.overrides))
            code = max(code, runner.run())
            print(runner.report())
            sources.append(Path(args.root) / sweep.name)
            config = config or sweep.config
            if code == 130:
                return code
    except (SweepError, OSError) as error:  # a refused sweep file, an unwritable --root
        print(f"adadim study: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    options = AnalysisOptions(by="arm", n_resamples=args.resamples, progress=False)
    try:
        result = analyze(sources, out, options)
        assert result.runset is not None  # analyze always sets it
        methods = result.runset.select(
            result.runset.runs.index[result.runset.runs["group"].astype(str) == sweeps[0].name]
        )
        method_result = None
        if len(methods):
            method_options = AnalysisOptions(by="method", studies=METHOD_FIGURES, progress=False)
            method_result = run_studies(methods, out / sweeps[0].name, method_options)
    except (ValueError, OSError) as error:  # no usable runs, an unwritable --out
        print(f"adadim study: analysis: {error}", file=sys.stderr)
        return 2
    for arm, keys in mixed_arms(result.runset).items():
        differ = "; ".join(f"{k}: {', '.join(v)}" for k, v in list(keys.items())[:4])
        print(f"adadim study: warning: the runs of arm {arm!r} differ beyond the seed ({differ})", file=sys.stderr)
    for arm, keys in mixed_provenance(result.runset).items():
        differ = "; ".join(f"{k.removeprefix('provenance/')}: {', '.join(v)}" for k, v in keys.items())
        print(f"adadim study: warning: the runs of arm {arm!r} come from different code ({differ})", file=sys.stderr)
    results = Path(args.results) if args.results else out / "results"
    raw = _raw_pixels(config, [o for o in args.overrides if o.startswith(("data.", "eval."))])
    try:
        written = write_results(results, result.runset, result.tables.get("claims"), raw)
        _copy_figures(out / "figures", results, ALL_FIGURES)
        if method_result is not None:
            _copy_figures(out / sweeps[0].name / "figures", results, METHOD_FIGURES)
        for readme in args.readme or []:
            replaced = update_readme(Path(readme), [p for p in written if p.suffix == ".md"])
            print(f"study: {readme}: replaced the blocks of {', '.join(replaced) or 'no table'}")
    except OSError as error:  # an unwritable --results or --readme
        print(f"adadim study: results: {error}", file=sys.stderr)
        return 2
    print(
        f"study: {len(result.runset)} runs analysed in {time.perf_counter() - started:.0f} s -> "
        f"{out}/report.html; results tables: {', '.join(str(p) for p in written)}"
    )
    return code
