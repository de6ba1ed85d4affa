"""The config reference page (docs/config.md), generated from the schema in `config.py`: every
key with its type, its default, its value in each bundled config, and the schema's comment.

``python -m adadim.training.config_reference docs/config.md`` rewrites the page; a test keeps the
committed page equal to this output.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path

from . import config as schema

_FIELD = re.compile(r"^\s+(\w+):\s*[^=]+?(?:=.*?)?(?:\s+#\s*(?P<comment>.*))?$")


def _comments(cls: type) -> dict[str, str]:
    """Each field's comment: its trailing comment, or the comment lines right above it."""
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(('"""', "def ")):
            text = " ".join([*above, match["comment"] or ""]).strip()
            comments[match[1]] = text
        above = []
    return comments


def _type_name(annotation) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return text.replace("typing.", "")


def _cell(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def leaves(cls: type = schema.TrainConfig, prefix: str = "") -> list[tuple[str, str, object, str]]:
    """(dotted key, type, default, comment) for every leaf of the schema, in declaration order."""
    rows = []
    comments = _comments(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            rows += leaves(kind, f"{prefix}{f.name}.")
        else:
            rows.append((f"{prefix}{f.name}", _type_name(f.type), default, comments.get(f.name, "")))
    return rows


def _bundled() -> dict[str, dict]:
    out = {}
    for name in schema.bundled_configs():
        out[name] = schema.to_flat_dict(schema.read_config_file(schema.CONFIG_DIR / f"{name}.yaml"))
    return out


def render() -> str:
    bundled = _bundled()
    names = sorted(bundled, key=lambda n: (n != "digits", n))  # the default first
    lines = [
        "# Config reference",
        "",
        "Every key of `adadim train`'s config, generated from the schema (`training/config.py`) by",
        "`python -m adadim.training.config_reference docs/config.md`. A key is set on the command line",
        "as `key=value`, or in a YAML file passed with `--config`. The bundled configs' columns show the",
        "value each sets; a blank cell keeps the schema's default.",
        "",
    ]
    section = None
    header = "| key | type | default | " + " | ".join(f"`{n}`" for n in names) + " | meaning |"
    rule = "|" + "---|" * (4 + len(names))
    for key, kind, default, comment in leaves():
        top = key.split(".")[0] if "." in key else "(top level)"
        if top != section:
            section = top
            lines += ["", f"## `{section}`" if section != "(top level)" else "## Top level", "", header, rule]
        cells = [_cell(bundled[n][key]) if key in bundled[n] else "" for n in names]
        row = [f"`{key}`", f"`{kind}`", f"`{_cell(default)}`", *(f"`{c}`" if c else "" for c in cells), comment]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
