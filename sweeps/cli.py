"""`adadim sweep create|agent|local|validate`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .spec import MAX_TRIALS, SweepError, grid_size, load_sweep, wandb_unsafe_values

SWEEP_ID = re.compile(r"Created sweep with ID:\s*(\S+)")
AGENT_LINE = re.compile(r"wandb agent (\S+)")


def add_parser(commands, name: str = "sweep", help_text: str = "") -> None:
    sweep = commands.add_parser(name, help=help_text, description=help_text)
    actions = sweep.add_subparsers(dest="sweep_command", required=True)
    create = actions.add_parser("create", help="validate FILE and create the W&B sweep online")
    create.add_argument("file")
    create.add_argument("--project", default="adadim")
    create.add_argument("--entity", default=None)
    agent = actions.add_parser("agent", help="run a W&B agent for SWEEP_ID (wraps `wandb agent`)")
    agent.add_argument("sweep_id", help="entity/project/id, or an id with --project/--entity")
    agent.add_argument("--count", type=int, default=None)
    agent.add_argument("--project", default=None)
    agent.add_argument("--entity", default=None)
    local = actions.add_parser("local", help="run FILE on this machine, no server: grid, random or bayes")
    local.add_argument("file")
    local.add_argument("--parallel", type=int, default=1, help="trials at once")
    local.add_argument("--count", type=int, default=None, help="number of trials (random/bayes; caps a grid)")
    local.add_argument("--root", default="runs/sweeps", help="where trial runs go: ROOT/<sweep name>/<trial id>")
    local.add_argument("--seed", type=int, default=0, help="seed of the random and bayes search")
    local.add_argument(
        "--max-trials",
        type=int,
        default=MAX_TRIALS,
        help=f"refuse a grid (or --count) of more trials than this, before building it (default {MAX_TRIALS:,})",
    )
    local.add_argument("overrides", nargs="*", help="key=value added to every trial (e.g. optim.epochs=20)")
    validate = actions.add_parser("validate", help="check FILE against the trainer's config and exit")
    validate.add_argument("file")


def wandb_executable() -> list[str]:
    return [sys.executable, "-m", "wandb"]


def create_command(file: str, project: str, entity: str | None) -> list[str]:
    command = [*wandb_executable(), "sweep", "--project", project]
    if entity:
        command += ["--entity", entity]
    return [*command, str(file)]


def agent_command(sweep_id: str, count: int | None, project: str | None = None, entity: str | None = None) -> list[str]:
    command = [*wandb_executable(), "agent"]
    if count is not None:
        command += ["--count", str(count)]
    if project:
        command += ["--project", project]
    if entity:
        command += ["--entity", entity]
    return [*command, sweep_id]


def parse_created(output: str) -> tuple[str, str | None]:
    """The sweep id and the full agent path from `wandb sweep`'s output."""
    found = SWEEP_ID.search(output)
    if not found:
        raise SweepError("wandb sweep printed no sweep id:\n" + "\n".join(output.strip().splitlines()[-5:]))
    agent = AGENT_LINE.search(output)
    return found.group(1), agent.group(1) if agent else None


def _create(args) -> int:
    sweep = load_sweep(args.file)
    unsafe = wandb_unsafe_values(sweep)
    if unsafe:
        raise SweepError(
            f"W&B passes values unquoted and the trainer would not read {unsafe[0]!r} as written "
            "(a '#' starts a YAML comment); change the value, or run the file with `adadim sweep local`"
        )
    result = subprocess.run(create_command(str(sweep.path), args.project, args.entity), capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        print(f"adadim sweep create: wandb sweep failed (exit {result.returncode}):\n{output.strip()}", file=sys.stderr)
        return 1
    sweep_id, path = parse_created(output)
    full = path or "/".join(p for p in (args.entity, args.project, sweep_id) if p)
    print(f"sweep id: {sweep_id}")
    print(f"run agents with: adadim sweep agent {full}")
    return 0


def run(args) -> int:
    try:
        if args.sweep_command == "validate":
            sweep = load_sweep(args.file)
            size = f" ({grid_size(sweep):,} combinations)" if sweep.method == "grid" else ""
            print(f"{sweep.path}: valid {sweep.method} sweep{size} over {', '.join(p.key for p in sweep.parameters)}")
            return 0
        if args.sweep_command == "create":
            return _create(args)
        if args.sweep_command == "agent":
            return subprocess.call(agent_command(args.sweep_id, args.count, args.project, args.entity))
        from .local import LocalSweep

        if args.max_trials < 1 or (args.count is not None and args.count < 1):
            raise SweepError("--max-trials and --count must be >= 1")
        runner = LocalSweep(
            load_sweep(args.file), Path(args.root), max(1, args.parallel), args.count, args.seed, list(args.overrides)
        )
        runner.max_trials = args.max_trials
        code = runner.run()
        print(runner.report())
        return code
    except (SweepError, OSError) as error:  # a refused file; an unreadable file or unwritable --root
        print(f"adadim sweep: {error}", file=sys.stderr)
        return 2
