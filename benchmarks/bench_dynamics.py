"""Time the dynamics monitor's default metric set against a straightforward eigh reference.

The reference computes the same metrics the obvious way: every entropy (H_R, H_Z, H_RZ and
each permuted joint) from `eigvalsh` of its N×N trace-normalized Gram matrix, and each
effective rank from `eigvalsh` of the N×N float64 Gram. The monitor uses the Frobenius
identity at alpha = 2, shares its Gram matrices, and takes singular values on the smaller
side. Both run in float32 on the same data in the same process.

A second table times the excess MI at order 2 against one MI evaluation: the closed-form
permutation null must cost at most 1.5x one MI evaluation (the excess includes the MI itself).

A third line times the order-2 measurement of H(R), H(Z), the joint entropy and the
closed-form null (`information_terms`, as the probe instrument runs it without the sampled
baseline) at N = 2048 against the two N×N Gram products it cannot avoid (row normalization and
F Fᵀ, for R and for Z), and prints the ratio (target <= 1.1x).

    python benchmarks/bench_dynamics.py [--sizes 256 1024 4096] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial

import torch
import torch.nn.functional as F
from adadim.dynamics import DynamicsMonitor, MonitorSettings, excess_mutual_information, gram_matrix, mutual_information
from adadim.dynamics.entropy import information_terms
from adadim.dynamics.kernels import normalized_rows
from adadim.dynamics.permutation_null import null_joint_entropy_order2

NATS_KEYS = ("H_R", "H_Z", "H_RZ", "I_RZ", "I_RZ_perm", "uniformity_Z", "alignment_Z")


def reference_metrics(r1, r2, z1, z2, settings: MonitorSettings, information_only: bool = False) -> dict[str, float]:
    r, z = torch.cat([r1, r2]), torch.cat([z1, z2])
    n = r.shape[0]

    def cosine_gram(x):
        xn = F.normalize(x, dim=1)
        k = xn @ xn.T
        return k / k.trace()

    def entropy(a):
        lam = torch.linalg.eigvalsh(a).clamp_min(0)
        lam = lam / lam.sum()
        return -math.log(float((lam**2).sum()))

    def joint(a, b):
        ab = a * b
        return entropy(ab / ab.trace())

    def erank(x):
        x64 = x.double()
        s = torch.linalg.eigvalsh(x64 @ x64.T).clamp_min(0).sqrt()
        p = s / s.sum()
        p = p[p > 0]
        return float(torch.exp(-(p * p.log()).sum()))

    a, b = cosine_gram(r), cosine_gram(z)
    h_r, h_z, h_rz = entropy(a), entropy(b), joint(a, b)
    generator = torch.Generator().manual_seed(settings.seed)
    perms = [torch.randperm(n, generator=generator) for _ in range(settings.n_permutations)]
    h_perm = sum(joint(a, b[p][:, p]) for p in perms) / len(perms)
    information = {"H_R": h_r, "H_Z": h_z, "H_RZ": h_rz, "I_RZ": h_r + h_z - h_rz, "I_RZ_perm": h_r + h_z - h_perm}
    if information_only:
        return information
    zn = F.normalize(z, dim=1)
    d2 = torch.cdist(zn, zn).pow(2)
    iu = torch.triu_indices(n, n, 1)
    return {
        **information,
        "erank_R": erank(r),
        "erank_Z": erank(z),
        "uniformity_Z": float(torch.log(torch.exp(-2 * d2[iu[0], iu[1]]).mean())),
        "alignment_Z": float((F.normalize(z1, dim=1) - F.normalize(z2, dim=1)).norm(dim=1).pow(2).mean()),
    }


def best_time(fn, repeats):
    result, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--d-r", type=int, default=512)
    parser.add_argument("--d-z", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timed calls")
    parser.add_argument("--gram-n", type=int, default=2048, help="N of the Gram-sharing line")
    args = parser.parse_args()

    monitor = DynamicsMonitor()
    information = DynamicsMonitor(metrics=("entropy", "mutual_information", "permutation_baseline"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, order=2, cosine kernel")
    print(f"default metric set: {', '.join(monitor.settings.metrics)}; D_R={args.d_r}, D_Z={args.d_z}")
    print("'information only' times H_R, H_Z, H_RZ, I_RZ, I_RZ_perm alone (no erank, uniformity, alignment)")
    print(
        f"{'N':>6} {'monitor ms':>11} {'reference ms':>13} {'speed-up':>9} {'max |Δ| nats':>13} "
        f"{'max rel Δ erank':>16} {'information only: ms / ref ms / speed-up':>42}"
    )
    generator = torch.Generator().manual_seed(0)
    for n in args.sizes:
        b = n // 2
        r1 = torch.randn(b, args.d_r, generator=generator)
        r2 = r1 + 0.5 * torch.randn(b, args.d_r, generator=generator)
        w = torch.randn(args.d_r, args.d_z, generator=generator) / args.d_r**0.5
        z1, z2 = torch.relu(r1 @ w), torch.relu(r2 @ w)
        views = (r1, r2), (z1, z2)
        ours, t_ours = best_time(partial(monitor, *views), args.repeats)
        theirs, t_ref = best_time(partial(reference_metrics, r1, r2, z1, z2, monitor.settings), args.repeats)
        _, t_info = best_time(partial(information, *views), args.repeats)
        _, t_info_ref = best_time(partial(reference_metrics, r1, r2, z1, z2, monitor.settings, True), args.repeats)
        nats = max(abs(ours["dynamics/" + k] - theirs[k]) for k in NATS_KEYS)
        erank = max(abs(ours["dynamics/" + k] - theirs[k]) / theirs[k] for k in ("erank_R", "erank_Z"))
        info = f"{1e3 * t_info:.1f} / {1e3 * t_info_ref:.1f} / {t_info_ref / t_info:.1f}x"
        print(
            f"{n:>6} {1e3 * t_ours:>11.1f} {1e3 * t_ref:>13.1f} {t_ref / t_ours:>8.1f}x {nats:>13.2e} "
            f"{erank:>16.2e} {info:>42}"
        )
    excess_cost_table(args.sizes, args.d_r, args.d_z, max(args.repeats, 5))
    gram_share(args.gram_n, args.d_r, args.d_z, max(args.repeats, 15))


def excess_cost_table(sizes, d_r, d_z, repeats) -> None:
    print()
    print("excess MI at order 2 (closed-form permutation null) against one MI evaluation, cosine kernel")
    print(f"{'N':>6} {'MI ms':>9} {'excess ms':>10} {'excess / MI':>12} {'null alone ms':>14} {'null / MI':>10}")
    generator = torch.Generator().manual_seed(1)
    for n in sizes:
        r = torch.randn(n, d_r, generator=generator)
        z = torch.tanh(r @ torch.randn(d_r, d_z, generator=generator) / d_r**0.5)
        _, t_mi = best_time(partial(mutual_information, r, z), repeats)
        _, t_excess = best_time(partial(excess_mutual_information, r, z), repeats)
        a, b = gram_matrix(r), gram_matrix(z)
        _, t_null = best_time(partial(null_joint_entropy_order2, a, b), repeats)
        print(
            f"{n:>6} {1e3 * t_mi:>9.1f} {1e3 * t_excess:>10.1f} {t_excess / t_mi:>11.2f}x "
            f"{1e3 * t_null:>14.2f} {t_null / t_mi:>9.3f}x"
        )


@torch.no_grad()
def gram_share(n, d_r, d_z, repeats) -> None:
    """H(R), H(Z), the joint and the null against the two Gram products alone."""
    generator = torch.Generator().manual_seed(2)
    r = torch.randn(n, d_r, generator=generator)
    z = torch.relu(r @ torch.randn(d_r, d_z, generator=generator) / d_r**0.5)

    def grams():
        fr, fz = normalized_rows(r), normalized_rows(z)
        return fr @ fr.T, fz @ fz.T

    measure = partial(information_terms, r, z, 2.0, "cosine", None, null_permutations=2)
    _, t_gram = best_time(grams, repeats)
    _, t_measure = best_time(measure, repeats)
    print()
    print(f"order 2 at N={n} (D_R={d_r}, D_Z={d_z}, float32, best of {repeats}): H(R), H(Z), joint, null")
    print(
        f"measurement {1e3 * t_measure:.1f} ms, the two Gram products {1e3 * t_gram:.1f} ms, "
        f"ratio {t_measure / t_gram:.3f}x (target <= 1.1x)"
    )


if __name__ == "__main__":
    main()
