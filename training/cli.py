"""`adadim train` and `adadim eval`: the training layer's commands.

The `adadim` console script (adadim.cli) registers these lazily. Run directly,
`python -m adadim.training.cli train ...` is what torchrun starts on every rank; it imports
nothing above the training layer.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_train_parser(commands, name: str = "train", help_text: str = "") -> None:
    train = commands.add_parser(
        name,
        help=help_text,
        description="Train one run. Overrides are OmegaConf key=value pairs, e.g. method=simclr optim.epochs=50.",
    )
    train.add_argument(
        "--config",
        default="digits",
        help="a YAML file, or a bundled config name: digits (default), cifar10-cpu, cifar10-resnet18",
    )
    train.add_argument("overrides", nargs="*", help="key=value config overrides")


def add_eval_parser(commands, name: str = "eval", help_text: str = "") -> None:
    evaluate = commands.add_parser(name, help=help_text, description=help_text)
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--baseline", choices=["raw", "random"], help="raw pixels, or a randomly initialised backbone")
    source.add_argument("--run", help="a run directory (its newest checkpoint)")
    evaluate.add_argument("--config", default="digits", help="config for --baseline (YAML file or bundled name)")
    evaluate.add_argument("--json", help="also write the scores to this JSON file")
    evaluate.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. eval.lowlabel_k=[5,10])")


def run_train(args) -> int:
    from .config import ConfigError, load_config
    from .data import DatasetError, DatasetNotFound
    from .image_folder import error_line
    from .run_lock import RunDirectoryError
    from .runtime import retain_freed_memory
    from .trainer import NonFiniteLoss, train

    try:
        cfg = load_config(args.config, args.overrides)
        # A process-wide allocator setting: applied here, where the process is ours, never by
        # the library's setup() (which may run inside a notebook or another program).
        if cfg.run.retain_freed_memory:
            retain_freed_memory()
        summary = train(cfg)
    except ConfigError as error:
        print(f"adadim train: bad config: {error}", file=sys.stderr)
        return 2
    except (DatasetNotFound, RunDirectoryError) as error:  # missing data; run dir unwritable, locked or damaged
        print(f"adadim train: {error}", file=sys.stderr)
        return 2
    except DatasetError as error:  # an unreadable image, possibly re-raised from a loader worker
        print(f"adadim train: {error_line(error)}", file=sys.stderr)
        return 2
    except NonFiniteLoss as error:
        print(f"adadim train: {error}", file=sys.stderr)
        return 1
    if summary["state"] == "interrupted":
        print(
            f"adadim train: interrupted at step {summary['step']}; checkpoint saved in {summary['run_dir']}",
            file=sys.stderr,
        )
        return 128 + summary["signal"]
    if int(os.environ.get("RANK", "0")) == 0:
        keys = (
            "final/lowlabel_top1",
            "final/random_init_lowlabel_top1",
            "final/linear_top1",
            "final/random_init_linear_top1",
            "final/knn_top1",
        )
        shown = ", ".join(f"{k} {summary[k]:.4f}" for k in keys if k in summary)
        print(f"run {summary['run_dir']} finished after {summary['trainer/step']} steps: {shown}")
    return 0


def run_eval(args) -> int:
    from .offline_eval import main as eval_main

    return eval_main(args)


def main(argv: list[str] | None = None) -> int:
    """`python -m adadim.training.cli train|eval ...`, for torchrun and for processes that must
    not load the other packages."""
    parser = argparse.ArgumentParser(prog="adadim")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands, "train", "train one SSL run")
    add_eval_parser(commands, "eval", "score a run with the evaluation protocol")
    args, extra = parser.parse_known_args(argv)
    if extra and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_train(args) if args.command == "train" else run_eval(args)


if __name__ == "__main__":
    sys.exit(main())
