"""The installed layout and the package layering."""

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import adadim
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dynamics", "training", "analysis", "sweeps")
# What each package may import from the others: dynamics <- training <- sweeps -> analysis.
ALLOWED = {
    "dynamics": set(),
    "training": {"dynamics"},
    "analysis": {"dynamics"},
    "sweeps": {"dynamics", "training", "analysis"},
}


def _imports_of(package: str) -> dict[str, set[str]]:
    """For every module of a package, the other adadim packages it imports (at any depth)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        targets = set()
        for name in names:
            parts = name.split(".")
            if parts[0] == "adadim" and len(parts) > 1:
                targets.add(parts[1])
            elif parts[0] in PACKAGES:
                raise AssertionError(f"{path}: imports {name!r}; use adadim.{name}")
        found[str(path.relative_to(ROOT))] = targets - {package}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_layering_has_no_upward_import(package):
    for module, targets in _imports_of(package).items():
        assert targets <= ALLOWED[package], f"{module} imports {sorted(targets - ALLOWED[package])}"


def test_layering_graph_is_acyclic():
    edges = {p: set().union(*_imports_of(p).values()) for p in PACKAGES}
    seen, stack = set(), set()

    def visit(node):
        assert node not in stack, f"import cycle through {node}"
        if node in seen:
            return
        stack.add(node)
        for nxt in edges[node]:
            visit(nxt)
        stack.discard(node)
        seen.add(node)

    for p in PACKAGES:
        visit(p)


@pytest.mark.slow
def test_train_command_loads_neither_analysis_nor_plotting():
    code = (
        "import json, sys\n"
        "from adadim.cli import parse, COMMANDS\n"
        "import importlib\n"
        "args = parse(['train', 'optim.epochs=1'])\n"
        "module = importlib.import_module(COMMANDS[args.command][0])\n"
        "from adadim.training import trainer, config\n"
        "config.load_config('digits', args.overrides)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('adadim.analysis', 'matplotlib', "
        "'seaborn')))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_wheel_top_level_is_adadim_only(tmp_path):
    # Build from a copy: setuptools leaves a build/ folder beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "runs", "study", "*.egg-info", "__pycache__", "wandb"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = tmp_path.glob("adadim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"adadim"}, top
    for package in PACKAGES:
        assert f"adadim/{package}/__init__.py" in names
    assert "adadim/training/configs/digits.yaml" in names
    assert "adadim/sweeps/study-digits.yaml" in names
    assert {"adadim/analysis/dashboard.js", "adadim/analysis/dashboard.css"} <= set(names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "adadim = adadim.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    assert {"adadim/__init__.py", "adadim/__main__.py", "adadim/cli.py", "adadim/py.typed"} <= set(names)
    # The tree's adadim/<folder> links are for tools; each module ships once, under its package.
    assert len(names) == len(set(names))
    assert not any(n.startswith(("adadim/dynamics/dynamics", "adadim/adadim")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    version = next(
        line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if line.startswith("Version:")
    )
    assert version.split()[1] == adadim.__version__


@pytest.mark.slow
def test_install_beside_wandb_sweeps_package_keeps_both_importable(tmp_path):
    """W&B's sweep engine installs a top-level `sweeps` package; ours lives under adadim."""
    other = tmp_path / "site"
    (other / "sweeps").mkdir(parents=True)
    (other / "sweeps" / "__init__.py").write_text("ENGINE = 'wandb sweeps'\n")
    code = "import sweeps, adadim.sweeps.spec as ours; print(sweeps.ENGINE, ours.__name__)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PYTHONPATH": str(other), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wandb sweeps adadim.sweeps.spec"


def test_python_dash_m_adadim_is_the_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "adadim", "--version"], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"adadim {adadim.__version__}"
    assert adadim.__version__ != "0+unknown"


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert adadim.__version__ == version("adadim")
