"""The examples of docs/own-trainer.md run as written, so that they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("lightning")

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own-trainer.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.slow
def test_the_examples_of_the_own_trainer_page_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) == 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_example"}
    for block in blocks:  # one namespace: later blocks use what earlier ones defined, as a reader would
        exec(compile(block, str(PAGE), "exec"), namespace)
    measured = namespace["measured"]
    assert measured["trainer/step"].tolist() == [0, 10, 20, 30]  # 2 epochs of 15 batches, every 10
    assert [row["trainer/step"] for row in namespace["history"]] == [10, 20, 30]
    shares = namespace["shares"]
    assert shares["trainer/step"].tolist() == [0, 10]  # 15 batches: the last step (15) has no batch after it
    total = shares["adadim/grad_share_invariance"] + shares["adadim/grad_share_variance"]
    assert total.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert len(namespace["runs"].history["train/loss"].dropna()) > 0
