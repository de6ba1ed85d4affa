"""Result tables in the README, the docs and each results folder's page are copies of the files
`adadim study` wrote into results/<name>/, never numbers typed by hand: each table sits between
markers naming its file, and each results folder says how it was made."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(RESULTS.glob("*/README.md"))]
BLOCK = re.compile(r"<!-- results/(?P<name>[\w.-]+/[\w.]+) -->\n(?P<body>.*?)<!-- /results/(?P=name) -->", re.S)


def _blocks(page: Path) -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer(page.read_text())}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_table_block_is_the_committed_study_output(page):
    for name, body in _blocks(page).items():
        assert (RESULTS / name).is_file(), f"{page.name}: block names results/{name}, which does not exist"
        assert body == (RESULTS / name).read_text(), f"{page.name}: block differs from results/{name}"


def test_the_readme_shows_a_headline_table_from_a_results_folder():
    assert _blocks(REPO / "README.md"), "README has no <!-- results/<folder>/<file> --> block"


def test_every_study_table_appears_on_its_folders_page():
    for table in RESULTS.glob("*/*.md"):
        if table.name == "README.md":
            continue
        folder = table.parent.name
        assert f"{folder}/{table.name}" in _blocks(table.parent / "README.md"), f"{table} is not on its page"


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in RESULTS.glob("*/README.md")))
def test_each_results_folder_names_its_commit_hardware_and_command(folder):
    text = (RESULTS / folder / "README.md").read_text()
    for field in ("**Commit:**", "**Hardware:**", "**Regenerate:**"):
        assert field in text, f"results/{folder}/README.md lacks {field}"


def test_every_image_a_page_shows_exists():
    for page in PAGES:
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name} shows a missing image {target}"
