"""Studies side by side: one column per study (digits beside CIFAR-10, say), built from the
results folders `adadim study --results` wrote, so a page that compares datasets still shows
copies of files, never numbers typed by hand.

- ``accuracy.md``: one score (the low-label probe by default) per representation: raw pixels,
  the random-init CNN (with its seed count) and every plain method (a method without a variant,
  and fixed α = 0.5), as ``mean ± std (runs)``; ``–`` where a study has no such arm.
- ``claims.md``: per claim, whether it is supported, its Holm-corrected p and its estimate in
  each study, and a last column that says where the verdict differs.

    python -m adadim.analysis.side_by_side --out results/headline \\
        digits=results/study-digits CIFAR-10=results/study-cifar10-cpu
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

from .markdown_text import markdown_cell
from .study_results import arm_order, is_plain_arm

# An unescaped pipe ends a cell; `markdown_cell` writes a pipe inside a cell as "\|".
_CELL_END = re.compile(r"(?<!\\)\|")
BASELINE_ROWS = ("raw pixels", "random-init CNN")


class TableError(ValueError):
    """A results file that is not the Markdown table `adadim study` writes."""


def read_table(path: Path) -> list[dict[str, str]]:
    """The rows of a Markdown pipe table, as {header: cell}. Each cell is read back to its text and
    written again with `markdown_cell`, so a cell is inert HTML however its file was written."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TableError(f"{path}: not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("|") or not set(lines[1]) <= set("|-: "):
        raise TableError(f"{path}: not a Markdown table (a header row, then a |---| row)")

    def cells(line: str) -> list[str]:
        parts = _CELL_END.split(line.strip().removeprefix("|").removesuffix("|"))
        return [markdown_cell(html.unescape(c.strip().replace("\\|", "|"))) for c in parts]

    header = cells(lines[0])
    rows = []
    for number, line in enumerate(lines[2:], start=3):
        row = cells(line)
        if len(row) != len(header):
            raise TableError(f"{path}: line {number} has {len(row)} cells, the header {len(header)}")
        rows.append(dict(zip(header, row, strict=True)))
    return rows


def _row_name(name: str) -> tuple[str, str]:
    """Baseline rows under one name, "random-init CNN (5 seeds)" and "(3 seeds)" being one row;
    what the name said in parentheses moves into the cell."""
    for base in BASELINE_ROWS:
        if name.startswith(base):
            return base, name[len(base) :].strip().removeprefix("(").removesuffix(")")
    return name, ""


def accuracy_side_by_side(folders: dict[str, Path], score: str = "low-label probe") -> str:
    tables = {label: read_table(Path(folder) / "accuracy.md") for label, folder in folders.items()}
    cells: dict[str, dict[str, str]] = {}
    for label, rows in tables.items():
        for row in rows:
            if score not in row:
                raise TableError(f"{folders[label]}/accuracy.md has no {score!r} column")
            name, seeds = _row_name(row["representation"])
            runs = row.get("runs", "–")
            count = seeds or (runs if runs not in ("", "–") else "")
            cells.setdefault(name, {})[label] = row[score] + (f" ({count})" if count else "")
    arms = [name for name in cells if name not in BASELINE_ROWS and is_plain_arm(name)]
    order = [name for name in BASELINE_ROWS if name in cells] + arm_order(arms)
    header = ["representation", *[markdown_cell(f"{label}: {score}") for label in folders]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in order:
        lines.append("| " + " | ".join([name, *[cells[name].get(label, "–") for label in folders]]) + " |")
    return "\n".join(lines) + "\n"


def claims_side_by_side(folders: dict[str, Path]) -> str:
    tables = {label: read_table(Path(folder) / "claims.md") for label, folder in folders.items()}
    verdicts: dict[str, dict[str, tuple[str, str]]] = {}
    for label, rows in tables.items():
        for row in rows:
            missing = {"claim", "estimate [95% CI]", "p (Holm)", "supported"} - set(row)
            if missing:
                raise TableError(f"{folders[label]}/claims.md lacks the column(s) {', '.join(sorted(missing))}")
            estimate = row["estimate [95% CI]"].split(" [")[0]
            text = f"{row['supported']} (Holm p {row['p (Holm)']}; estimate {estimate})"
            verdicts.setdefault(row["claim"], {})[label] = (row["supported"], text)
    header = ["claim", *[markdown_cell(label) for label in folders], "verdicts"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim, by_label in verdicts.items():
        present = {label: by_label[label][0] for label in folders if label in by_label}
        if len(present) < len(folders):
            agreement = "not in every study"
        elif len(set(present.values())) == 1:
            agreement = "agree"
        else:
            agreement = "differ: " + ", ".join(f"{v} on {markdown_cell(label)}" for label, v in present.items())
        cells = [by_label[label][1] if label in by_label else "–" for label in folders]
        lines.append("| " + " | ".join([claim, *cells, agreement]) + " |")
    return "\n".join(lines) + "\n"


def write_side_by_side(folders: dict[str, Path], out: Path, score: str = "low-label probe") -> list[Path]:
    """``out``/accuracy.md and ``out``/claims.md. Without a claims table in every study there is no
    claims.md, and an older one in ``out`` is removed rather than left beside the new accuracy.md.
    ``out`` may not be one of the studies' folders: their own tables would be replaced."""
    if any(out.resolve() == Path(folder).resolve() for folder in folders.values()):
        raise TableError(f"--out {out} is one of the studies' folders; write the comparison elsewhere")
    text = {"accuracy.md": accuracy_side_by_side(folders, score)}
    if all((Path(folder) / "claims.md").is_file() for folder in folders.values()):
        text["claims.md"] = claims_side_by_side(folders)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in text.items():
        (out / name).write_text(body, encoding="utf-8")
        written.append(out / name)
    if "claims.md" not in text:
        (out / "claims.md").unlink(missing_ok=True)
    return written


def _study(spec: str) -> tuple[str, Path]:
    label, sep, folder = spec.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected LABEL=FOLDER, e.g. digits=results/study-digits")
    return label, Path(folder)


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n\n")[0]
    parser = argparse.ArgumentParser(prog="python -m adadim.analysis.side_by_side", description=summary)
    parser.add_argument("studies", nargs="+", type=_study, help="LABEL=FOLDER, one per column, in column order")
    parser.add_argument("--out", type=Path, required=True, help="the folder that receives accuracy.md and claims.md")
    parser.add_argument("--score", default="low-label probe", help="the accuracy column to compare")
    args = parser.parse_args(argv)
    folders = dict(args.studies)
    if len(folders) < 2:
        parser.error("name at least two studies, each with its own label")
    for label, folder in folders.items():
        if not (folder / "accuracy.md").is_file():
            print(f"side_by_side: {folder}/accuracy.md not found (study {label!r})", file=sys.stderr)
            return 2
    try:
        written = write_side_by_side(folders, args.out, args.score)
    except TableError as error:
        print(f"side_by_side: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an unreadable table, an --out that is a file
        print(f"side_by_side: {error.strerror or error}: {error.filename or args.out}", file=sys.stderr)
        return 2
    print("side_by_side: wrote " + ", ".join(str(p) for p in written))
    if not any(p.name == "claims.md" for p in written):
        print("side_by_side: no claims.md: not every study has a claims table", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
