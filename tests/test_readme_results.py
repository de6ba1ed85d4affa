"""The README's result tables are copies of the files `adadim study` wrote (docs/results/),
never numbers typed by hand: each table sits between markers naming its file."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
TABLES = ("accuracy.md", "claims.md", "gradient_shares.md", "steering.md")


def _blocks(text: str) -> dict[str, str]:
    pattern = re.compile(r"<!-- results/(?P<name>[\w.]+) -->\n(?P<body>.*?)<!-- /results/(?P=name) -->", re.S)
    return {m["name"]: m["body"] for m in pattern.finditer(text)}


@pytest.mark.parametrize("name", TABLES)
def test_the_readme_table_is_the_committed_study_output(name):
    blocks = _blocks((REPO / "README.md").read_text())
    assert name in blocks, f"README has no <!-- results/{name} --> block"
    assert blocks[name] == (RESULTS / name).read_text(), f"README's {name} differs from docs/results/{name}"


def test_every_figure_the_readme_shows_is_in_docs_results():
    shown = re.findall(r"\]\((docs/results/[\w.]+\.png)\)", (REPO / "README.md").read_text())
    assert shown and all((REPO / p).is_file() for p in shown)
