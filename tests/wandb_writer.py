"""Write a W&B offline run with plain wandb calls (no adadim), and return what was logged.

Needs only wandb, so another wandb version's Python can run it as a script:
``python tests/wandb_writer.py OUT_DIR RUN_ID`` writes the run under OUT_DIR/wandb/ and the
expected rows to OUT_DIR/expected.json.
"""

from __future__ import annotations

import json
import sys

# Values that stress the encoding: non-finite floats, exact big integers, the float
# rounding of 0.1 + 0.2, subnormals, bool, null, a list, a nested dict, non-ASCII text.
VALUES = [
    float("inf"),
    float("-inf"),
    float("nan"),
    2**60,
    -(2**63),
    0.1 + 0.2,
    1e-320,
    5e-324,
    True,
    None,
    [1, 2.5, float("nan")],
    {"x": {"y": 1}},
    "ünï",
    -1.5e300,
]
CONFIG = {"lr": {"base": 0.1, "value": 3}, "tags": ["a", "b"], "none": None, "n": 7}
EXIT_CODE = 3


def write_plain_run(directory: str, run_id: str) -> dict:
    """The run's expected id, config, summary, exit code and history rows (logged keys only,
    nested dicts named W&B's way, ``a.b``)."""
    import wandb

    run = wandb.init(project="p", id=run_id, dir=directory, mode="offline", config=CONFIG)
    rows = []
    for i, value in enumerate(VALUES):
        run.log({"v": value, "i": i, "résumé/ключ": i * 0.5})
        nested = isinstance(value, dict)
        key_value = {f"v.{k}.{kk}": vv for k, v in value.items() for kk, vv in v.items()} if nested else {"v": value}
        rows.append({"_step": i, "i": i, "résumé/ключ": i * 0.5, **key_value})
    run.log({"part": 1}, commit=False)  # merged into the next row
    run.log({"i": len(VALUES)})
    rows.append({"_step": len(VALUES), "part": 1, "i": len(VALUES)})
    run.summary["best"] = {"k": 1.25}
    run.finish(exit_code=EXIT_CODE)
    return {
        "id": run_id,
        "config": CONFIG,
        "summary": {"best": {"k": 1.25}},
        "exit_code": EXIT_CODE,
        "history": rows,
        "wandb": wandb.__version__,
    }


if __name__ == "__main__":
    out, run_id = sys.argv[1], sys.argv[2]
    expected = write_plain_run(out, run_id)
    with open(f"{out}/expected.json", "w") as f:
        json.dump(expected, f)
