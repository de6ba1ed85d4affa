import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from adadim.training.losses import barlow_twins_loss, mutual_information_term, nt_xent_loss, vicreg_loss


def test_vicreg_hand_computed_case():
    z1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    z2 = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    terms = vicreg_loss(z1, z2)
    # invariance: one differing entry (0 vs 1) over 4 entries.
    assert float(terms.invariance) == pytest.approx(0.25)
    # variance: z1 col0 std sqrt(2+1e-4) > 1 -> 0, col1 std 0.01 -> 0.99, mean 0.495;
    # z2 col0 -> 0, col1 var 0.5, std sqrt(0.5001) -> 1 - 0.70718 ...; views averaged.
    v2 = (1 - math.sqrt(0.5 + 1e-4)) / 2
    assert float(terms.variance) == pytest.approx(0.5 * (0.495 + v2), abs=1e-6)
    # covariance: z1 cov01 = 0; z2 centred cols (1,-1), (0.5,-0.5): cov01 = 1, off-diag² sum 2, / D=2.
    assert float(terms.covariance) == pytest.approx(1.0, abs=1e-6)
    assert float(terms.loss) == pytest.approx(25 * 0.25 + 25 * float(terms.variance) + 1.0, abs=1e-5)


def test_vicreg_is_zero_on_identical_whitened_views():
    z = torch.tensor([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]])
    terms = vicreg_loss(z, z.clone())
    assert float(terms.loss) == pytest.approx(0.0, abs=1e-7)


def _nt_xent_numpy(z1, z2, tau):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [z[i] @ z[k] / tau for k in range(2 * n) if k != i]
        total += -(z[i] @ z[j] / tau) + np.log(np.sum(np.exp(sims)))
    return total / (2 * n)


def test_nt_xent_against_explicit_loops():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    for tau in (0.1, 0.5):
        assert float(nt_xent_loss(z1, z2, tau)) == pytest.approx(_nt_xent_numpy(z1.numpy(), z2.numpy(), tau), abs=1e-5)


def test_nt_xent_single_pair_has_no_negative_and_zero_loss():
    assert float(nt_xent_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))) == pytest.approx(0.0)


def test_barlow_twins_hand_computed_and_perfect_case():
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    terms = barlow_twins_loss(z, z.clone())
    assert float(terms.loss) == pytest.approx(0.0, abs=1e-4)
    # Second view negates dim 0: C = diag(-1, 1) -> on-diagonal (1-(-1))² = 4.
    terms = barlow_twins_loss(z, z * torch.tensor([-1.0, 1.0]))
    assert float(terms.on_diagonal) == pytest.approx(4.0, abs=1e-3)
    assert float(terms.off_diagonal) == pytest.approx(0.0, abs=1e-6)


def test_mi_term_is_differentiable():
    g = torch.Generator().manual_seed(1)
    r = (torch.randn(8, 4, generator=g, requires_grad=True), torch.randn(8, 4, generator=g))
    z = (torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g))
    mi = mutual_information_term(r, z)
    mi.backward()
    assert r[0].grad is not None and r[0].grad.abs().sum() > 0


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: vicreg_loss(torch.randn(4, 3), torch.randn(4, 2)), "same shape"),
        (lambda: vicreg_loss(torch.randn(1, 3), torch.randn(1, 3)), "at least 2"),
        (lambda: nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), 0.0), "temperature"),
        (lambda: barlow_twins_loss(torch.randn(4), torch.randn(4)), "2-D"),
    ],
)
def test_losses_refuse_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def _ddp_nt_xent(rank, world, init_file, z1, z2, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        half = z1.shape[0] // world
        a = z1[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        b = z2[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        loss = nt_xent_loss(a, b, 0.3)
        # DDP averages gradients across ranks: emulate that on the local loss.
        (loss / world).backward()
        torch.save({"loss": loss.detach(), "grad": a.grad}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_nt_xent_gathers_negatives_across_ranks(tmp_path):
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out = str(tmp_path / "r")
    mp.spawn(_ddp_nt_xent, args=(2, str(tmp_path / "init"), z1, z2, out), nprocs=2, join=True)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    full1 = z1.clone().requires_grad_(True)
    single = nt_xent_loss(full1, z2, 0.3)
    single.backward()
    assert float(sum(r["loss"] for r in ranks) / 2) == pytest.approx(float(single.detach()), abs=1e-6)
    # The differentiable gather sums each rank's contribution, so every rank ends with the
    # gradient of the global loss for its own rows: exactly the single-process gradient.
    assert torch.allclose(ranks[0]["grad"], full1.grad[:4], atol=1e-6)
    assert torch.allclose(ranks[1]["grad"], full1.grad[4:], atol=1e-6)
