"""The `adadim` console script: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adadim", description="AdaDim: representational dynamics of SSL")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train one SSL run (AdaDim or a baseline)",
        description="Train one run. Overrides are OmegaConf key=value pairs, e.g. method=simclr optim.epochs=50.",
    )
    train.add_argument(
        "--config", default="digits", help="a YAML file, or a bundled config name: digits (default), cifar10-resnet18"
    )
    train.add_argument("overrides", nargs="*", help="key=value config overrides")

    evaluate = commands.add_parser(
        "eval",
        help="score a trained run, or the raw-pixel / random-init references, with the evaluation protocol",
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--baseline", choices=["raw", "random"], help="raw pixels, or a randomly initialised backbone")
    source.add_argument("--run", help="a run directory (its newest checkpoint)")
    evaluate.add_argument("--config", default="digits", help="config for --baseline (YAML file or bundled name)")
    evaluate.add_argument("--json", help="also write the scores to this JSON file")
    evaluate.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. eval.lowlabel_k=[5,10])")

    from analysis.cli import add_parser as add_analyze_parser

    add_analyze_parser(commands)
    from sweeps.cli import add_parsers as add_sweep_parsers

    add_sweep_parsers(commands)

    demo = commands.add_parser("demo", help="measure the dynamics estimators on the embedded digits data")
    demo.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024], help="values of N")
    demo.add_argument("--width", type=int, default=2048, help="dimension of the embeddings Z")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _train(args) -> int:
    from .config import ConfigError, load_config
    from .data import DatasetNotFound
    from .trainer import NonFiniteLoss, train

    try:
        cfg = load_config(args.config, args.overrides)
        summary = train(cfg)
    except ConfigError as error:
        print(f"adadim train: bad config: {error}", file=sys.stderr)
        return 2
    except DatasetNotFound as error:
        print(f"adadim train: {error}", file=sys.stderr)
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


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """argparse stops collecting ``key=value`` overrides at the first option; the rest come
    back unparsed and join the overrides here, so options and overrides can mix freely."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "analyze":
        from analysis.cli import main as analyze_main

        return analyze_main(args)
    if args.command in ("sweep", "study"):
        from sweeps.cli import main as sweep_main

        return sweep_main(args)
    if args.command == "eval":
        from .offline_eval import main as eval_main

        return eval_main(args)
    if args.command == "demo":
        from .demo import main as demo_main

        if any(n < 2 for n in args.batch_sizes) or args.width < 1:
            print("adadim demo: batch sizes must be >= 2 and --width >= 1", file=sys.stderr)
            return 2
        return demo_main(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
