"""Studies side by side: the README's two-dataset tables are built from the results folders."""

from pathlib import Path

import pytest
from adadim.analysis.side_by_side import TableError, main, read_table, write_side_by_side

REPO = Path(__file__).resolve().parents[1]
HEADLINE = REPO / "results" / "headline"
ACCURACY_HEADER = (
    "| representation | runs | full linear probe | low-label probe | kNN | weighted kNN |\n|---|---|---|---|---|---|\n"
)
CLAIMS_HEADER = (
    "| claim | estimate [95% CI] | p | p (Holm) | supported | n | test | note |\n|---|---|---|---|---|---|---|---|\n"
)


def _study(folder: Path, accuracy_rows: list[str], claims_rows: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "accuracy.md").write_text(ACCURACY_HEADER + "".join(r + "\n" for r in accuracy_rows))
    if claims_rows is not None:
        (folder / "claims.md").write_text(CLAIMS_HEADER + "".join(r + "\n" for r in claims_rows))
    return folder


@pytest.fixture
def two_studies(tmp_path):
    a = _study(
        tmp_path / "a",
        [
            "| raw pixels | – | 95.78 | 86.76 | 96.89 | 95.56 |",
            "| random-init CNN (5 seeds) | – | 97.56 ± 0.67 | 88.40 ± 1.05 | 95.20 ± 1.32 | 83.64 ± 2.24 |",
            "| vicreg | 5 | 99.56 ± 0.27 | 96.03 ± 0.37 | 98.04 ± 0.76 | 94.49 ± 0.69 |",
            "| fixed α=0.25 | 3 | 99.33 ± 0.22 | 95.54 ± 0.32 | 97.70 ± 0.13 | 94.37 ± 0.34 |",
            "| fixed α=0.5 | 5 | 99.42 ± 0.43 | 95.70 ± 0.21 | 97.78 ± 0.27 | 94.80 ± 0.34 |",
            "| adadim | 5 | 99.33 ± 0.16 | 95.93 ± 0.18 | 97.87 ± 0.62 | 94.62 ± 0.53 |",
            "| adadim γ=0.2 minimize | 3 | 99.48 ± 0.13 | 96.06 ± 0.26 | 97.85 ± 0.13 | 95.04 ± 1.10 |",
        ],
        [
            "| `ratio_accuracy` | -0.693 [-0.9, -0.3] | 0.004 | 0.0169 | yes | 62 | t | n |",
            "| `optimum_H_R` | 0.006 [-0.1, 0.1] | 0.8 | 1 | no | 62 | t | n |",
        ],
    )
    b = _study(
        tmp_path / "b",
        [
            "| raw pixels | – | 38.48 | 22.01 | 42.37 | 41.93 |",
            "| random-init CNN (3 seeds) | – | 45.60 ± 0.05 | 25.65 ± 0.99 | 41.60 ± 0.54 | 39.01 ± 0.62 |",
            "| adadim | 3 | 65.00 ± 0.26 | 41.59 ± 0.41 | 60.54 ± 0.23 | 58.63 ± 0.21 |",
            "| barlow | 3 | 63.42 ± 0.57 | 40.14 ± 0.86 | 58.52 ± 0.15 | 56.50 ± 0.51 |",
            "| vicreg | 3 | 64.87 ± 0.47 | 41.04 ± 0.57 | 59.97 ± 0.74 | 58.07 ± 0.57 |",
        ],
        [
            "| `ratio_accuracy` | -0.403 [-0.78, 0.191] | 0.345 | 1 | no | 18 | t | n |",
            "| `optimum_H_R` | 0.0895 [-0.125, 0.304] | 0.838 | 1 | no | 18 | t | n |",
            "| `method_comparison` | 0.00547 [0.001, 0.01] | 0.0342 | 0.171 | no | 15 | t | n |",
        ],
    )
    return {"digits": a, "CIFAR-10": b}


def test_accuracy_rows_line_up_by_representation_and_leave_variants_out(two_studies, tmp_path):
    write_side_by_side(two_studies, tmp_path / "out")
    rows = {r["representation"]: r for r in read_table(tmp_path / "out" / "accuracy.md")}
    assert list(rows) == ["raw pixels", "random-init CNN", "vicreg", "barlow", "fixed α=0.5", "adadim"]
    assert rows["random-init CNN"]["CIFAR-10: low-label probe"] == "25.65 ± 0.99 (3 seeds)"
    assert rows["raw pixels"]["digits: low-label probe"] == "86.76"
    assert rows["vicreg"]["digits: low-label probe"] == "96.03 ± 0.37 (5)"
    assert rows["vicreg"]["CIFAR-10: low-label probe"] == "41.04 ± 0.57 (3)"
    assert rows["barlow"]["digits: low-label probe"] == "–"  # a method one study did not train
    assert rows["fixed α=0.5"]["CIFAR-10: low-label probe"] == "–"


def test_another_score_column_can_be_compared(two_studies, tmp_path):
    write_side_by_side(two_studies, tmp_path / "out", score="kNN")
    rows = {r["representation"]: r for r in read_table(tmp_path / "out" / "accuracy.md")}
    assert rows["adadim"]["CIFAR-10: kNN"] == "60.54 ± 0.23 (3)"
    with pytest.raises(TableError, match="no 'top-5' column"):
        write_side_by_side(two_studies, tmp_path / "out", score="top-5")


def test_claims_say_where_the_verdicts_differ(two_studies, tmp_path):
    write_side_by_side(two_studies, tmp_path / "out")
    rows = {r["claim"]: r for r in read_table(tmp_path / "out" / "claims.md")}
    assert rows["`ratio_accuracy`"]["digits"] == "yes (Holm p 0.0169; estimate -0.693)"
    assert rows["`ratio_accuracy`"]["verdicts"] == "differ: yes on digits, no on CIFAR-10"
    assert rows["`optimum_H_R`"]["verdicts"] == "agree"
    assert rows["`method_comparison`"]["digits"] == "–"
    assert rows["`method_comparison`"]["verdicts"] == "not in every study"


def test_labels_are_inert_in_the_table(two_studies, tmp_path):
    folders = {"<b>x</b>": two_studies["digits"], "y|z": two_studies["CIFAR-10"]}
    write_side_by_side(folders, tmp_path / "out")
    text = (tmp_path / "out" / "accuracy.md").read_text()
    assert "<b>" not in text and "&lt;b&gt;x&lt;/b&gt;: low-label probe" in text and "y\\|z" in text
    assert [len(r) for r in read_table(tmp_path / "out" / "claims.md")] == [4, 4, 4]


def test_cells_from_the_files_are_inert_and_keep_escaped_pipes(tmp_path):
    a = _study(
        tmp_path / "a",
        ["| <img/src=x/onerror=alert(1)> | 3 | 1 | <script>x</script> | 1 | 1 |", "| a\\|b | 3 | 1 | 2 | 1 | 1 |"],
        ["| `c` | 1 [0, 2] | 0.5 | 1 | no | 3 | t | r > 0 |"],
    )
    b = _study(
        tmp_path / "b", ["| a\\|b | 3 | 1 | 5 | 1 | 1 |"], ["| `c` | 1 [0, 2] | 0.5 | 1 | <b>no</b> | 3 | t | n |"]
    )
    write_side_by_side({"A": a, "B": b}, tmp_path / "out")
    text = (tmp_path / "out" / "accuracy.md").read_text() + (tmp_path / "out" / "claims.md").read_text()
    assert "<img" not in text and "<script>" not in text and "<b>" not in text
    assert "&lt;img/src=x/onerror=alert(1)&gt;" in text and "&lt;script&gt;x&lt;/script&gt; (3)" in text
    rows = {r["representation"]: r for r in read_table(tmp_path / "out" / "accuracy.md")}
    assert rows["a\\|b"] == {"representation": "a\\|b", "A: low-label probe": "2 (3)", "B: low-label probe": "5 (3)"}


def test_out_may_not_be_a_study_folder_and_a_stale_claims_table_goes(two_studies, tmp_path, capsys):
    before = (two_studies["digits"] / "accuracy.md").read_text()
    assert (
        main(["--out", str(two_studies["digits"]), f"a={two_studies['digits']}", f"b={two_studies['CIFAR-10']}"]) == 2
    )
    assert "is one of the studies' folders" in capsys.readouterr().err
    assert (two_studies["digits"] / "accuracy.md").read_text() == before
    out = tmp_path / "out"
    write_side_by_side(two_studies, out)
    assert (out / "claims.md").is_file()
    (two_studies["CIFAR-10"] / "claims.md").unlink()
    assert main(["--out", str(out), f"a={two_studies['digits']}", f"b={two_studies['CIFAR-10']}"]) == 0
    assert not (out / "claims.md").exists()
    assert "no claims.md: not every study has a claims table" in capsys.readouterr().err


def test_bad_input_is_one_line_and_exit_2(two_studies, tmp_path, capsys):
    broken = _study(tmp_path / "broken", ["| vicreg | 5 | 1 |"])
    out = tmp_path / "out"
    assert main(["--out", str(out), f"a={two_studies['digits']}", f"b={broken}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 3 has 3 cells, the header 6" in err and not out.exists()
    assert main(["--out", str(out), f"a={two_studies['digits']}", f"b={tmp_path / 'nowhere'}"]) == 2
    assert "nowhere/accuracy.md not found" in capsys.readouterr().err
    (tmp_path / "prose.md").write_text("no table here\n")
    with pytest.raises(TableError, match="not a Markdown table"):
        read_table(tmp_path / "prose.md")
    latin = _study(tmp_path / "latin", [])
    (latin / "accuracy.md").write_bytes(
        ACCURACY_HEADER.encode("latin-1", "replace") + b"| \xb1 | 1 | 1 | 1 | 1 | 1 |\n"
    )
    assert main(["--out", str(out), f"a={two_studies['digits']}", f"b={latin}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not UTF-8 text" in err
    (tmp_path / "a-file").write_text("x")
    assert main(["--out", str(tmp_path / "a-file"), f"a={two_studies['digits']}", f"b={two_studies['CIFAR-10']}"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    with pytest.raises(SystemExit):
        main(["--out", str(out), str(two_studies["digits"])])  # LABEL=FOLDER is required


def test_the_committed_headline_tables_are_current(tmp_path):
    """results/headline/ (and so the README blocks copied from it) match the study folders."""
    folders = {"digits": REPO / "results" / "study-digits", "CIFAR-10": REPO / "results" / "study-cifar10-cpu"}
    written = write_side_by_side(folders, tmp_path)
    for path in written:
        assert (HEADLINE / path.name).read_text() == path.read_text(), f"rerun the command in {HEADLINE}/README.md"
