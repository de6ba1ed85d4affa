"""The `adadim` console script: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adadim", description="AdaDim: representational dynamics of SSL")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="measure the dynamics estimators on the embedded digits data")
    demo.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024], help="values of N")
    demo.add_argument("--width", type=int, default=2048, help="dimension of the embeddings Z")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main

        if any(n < 2 for n in args.batch_sizes) or args.width < 1:
            print("adadim demo: batch sizes must be >= 2 and --width >= 1", file=sys.stderr)
            return 2
        return demo_main(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
