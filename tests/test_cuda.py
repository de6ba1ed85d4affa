"""CUDA paths, run where a GPU is present (skipped elsewhere). Every tensor an estimator returns
lives on its inputs' device: an empty permutation stack made on the CPU once broke every
`adadim train` on a GPU."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize("order", [2.0, 1.5])
def test_information_terms_stay_on_the_inputs_device(order):
    from adadim.dynamics.entropy import information_terms

    x, y = torch.randn(64, 8, device="cuda"), torch.randn(64, 4, device="cuda")
    out = information_terms(x, y, order, "cosine", (None, None))
    assert {v.device.type for v in out.values()} == {"cuda"}


def test_a_short_run_trains_on_the_gpu(tmp_path):
    from adadim.training import load_config, train
    from trainer_helpers import tiny_overrides

    summary = train(load_config(None, tiny_overrides(tmp_path, "cuda", **{"run.device": "cuda", "adadim.gamma": 0.1})))
    assert summary["state"] == "finished"
