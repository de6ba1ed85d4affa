"""The `adadim` console script: one entry point over every package, loaded lazily.

Only the module of the subcommand being run is imported, so `adadim train` (and every
torchrun rank) loads neither the analysis package nor matplotlib. The layering is
dynamics <- training <- sweeps -> analysis; this module sits above them all and may name them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from adadim import __version__

# name -> (module, function that adds the subparser, function that runs it, one-line help)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "train": ("adadim.training.cli", "add_train_parser", "run_train", "train one SSL run (AdaDim or a baseline)"),
    "eval": (
        "adadim.training.cli",
        "add_eval_parser",
        "run_eval",
        "score a trained run, or the raw-pixel / random-init references, with the evaluation protocol",
    ),
    "noise-floor": (
        "adadim.training.noise_floor",
        "add_parser",
        "run",
        "measure a run's measurement noise: the monitor on fresh view draws of its newest checkpoint",
    ),
    "demo": ("adadim.dynamics.demo", "add_parser", "run", "measure the dynamics estimators on the embedded digits"),
    "analyze": (
        "adadim.analysis.cli",
        "add_parser",
        "run",
        "turn runs into trajectories, information planes, claims, tables and an HTML report",
    ),
    "dashboard": (
        "adadim.analysis.dashboard_cli",
        "add_parser",
        "run",
        "dashboards: a W&B workspace view of a project, or one interactive offline HTML page",
    ),
    "sweep": ("adadim.sweeps.cli", "add_parser", "run", "W&B sweeps: create, run agents, or run the same YAML locally"),
    "study": ("adadim.sweeps.study", "add_parser", "run", "the reproduction study: a local sweep, then every analysis"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The full parser for `command`; every other subcommand appears with its help only."""
    parser = argparse.ArgumentParser(prog="adadim", description="AdaDim: representational dynamics of SSL")
    parser.add_argument("--version", action="version", version=f"adadim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, add, _, help_text) in COMMANDS.items():
        if name == command:
            getattr(importlib.import_module(module), add)(commands, name, help_text)
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse stops collecting ``key=value`` overrides at the first option; the rest come
    back unparsed and join the overrides here, so options and overrides can mix freely."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    module, _, run, _ = COMMANDS[args.command]
    return getattr(importlib.import_module(module), run)(args)


if __name__ == "__main__":
    sys.exit(main())
