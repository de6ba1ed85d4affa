"""The README stays a short front page, the docs site builds, and generated pages stay current."""

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from adadim.training.config_reference import leaves, render

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dynamics", "training", "analysis", "sweeps")


def test_readme_is_a_short_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README has {len(lines)} lines; reference material belongs in docs/"


def test_the_readme_dynamics_example_runs():
    text = (REPO / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "adadim.dynamics" in b]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert set(namespace["metrics"]) >= {"dynamics/H_R", "dynamics/I_RZ_excess"}


def test_the_config_reference_page_is_current():
    committed = (REPO / "docs" / "config.md").read_text()
    assert committed == render(), "run: python -m adadim.training.config_reference docs/config.md"


def test_every_config_key_is_on_the_reference_page_with_its_meaning():
    page = (REPO / "docs" / "config.md").read_text()
    for key, _, _, meaning in leaves():
        assert f"| `{key}` |" in page
        assert meaning, f"{key} has no comment in training/config.py saying what it does"


@pytest.mark.slow
def test_docs_site_builds_strictly_and_the_api_reference_lists_every_public_name(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is in the dev extra"
    site = tmp_path / "site"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for package in PACKAGES:
        html = (site / "reference" / package / "index.html").read_text()
        shown = set(re.findall(rf'id="adadim\.{package}\.(\w+)"', html))
        public = set(importlib.import_module(f"adadim.{package}").__all__)
        assert public <= shown, f"adadim.{package}: not in the API reference: {sorted(public - shown)}"


def test_the_site_home_page_is_the_readme_with_site_links():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        from make_index import index_text
    finally:
        sys.path.remove(str(REPO / "docs"))
    expected = index_text((REPO / "README.md").read_text())
    assert (REPO / "docs" / "index.md").read_text() == expected, "run: python docs/make_index.py"
    assert "](docs/" not in expected and "](CHANGELOG.md)" not in expected
