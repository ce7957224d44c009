"""The Non-Syn VAE's greedy choice of the latents that carry the union information.

:func:`greedy_select` is the exact scan of the original implementation
(``docs/reference/original-implementation.md`` §1.5): rounds that each scan the unselected
latents in index order with a discounted acceptance test, a strict ``>``,
and the record-chain replacement inside a round that can keep a smaller,
lower-index latent. It is not the same as taking the largest KLs in order:
:func:`sorted_select` is that simplification, offered only as a named option.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NonFiniteKL(ValueError):
    """The per-latent KLs hold NaN or infinity (training diverged): no selection is possible."""


def _as_floats(kl_per_dim) -> list[float]:
    if hasattr(kl_per_dim, "detach"):  # a torch tensor: one copy to the host
        kl_per_dim = kl_per_dim.detach().cpu().double().numpy()
    values = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    if not np.isfinite(values).all():
        raise NonFiniteKL(f"KL per latent must be finite, got {values.tolist()}")
    return values.tolist()


def greedy_select(kl_per_dim: Sequence[float], omega: float) -> tuple[list[int], list[int]]:
    """``(best, worst)``: the greedy best set in order of addition, and the rest ascending.

    ``kl_per_dim[j]`` is the batch-mean KL of latent ``j`` (the original's
    ``I({j})``, additive over sets); ``omega`` in (0, 1) is the discount.
    Round 1 takes the running argmax with a strict ``>``; each later round
    accepts a candidate ``j`` when ``omega * (T + K_j) > theta`` where ``T``
    is the selected total and ``theta`` the undiscounted value of the
    round's current pick (initially ``T``). A round that accepts nothing
    ends the search: the original's remaining rounds repeat the same
    failing scan and change nothing.
    """
    if not 0.0 < omega < 1.0:
        raise ValueError(f"omega must lie in (0, 1), got {omega}")
    k = _as_floats(kl_per_dim)
    chosen = [False] * len(k)
    best: list[int] = []
    total = 0.0
    for _ in range(len(k)):
        theta, pick = total, -1
        for j, kj in enumerate(k):
            if chosen[j]:
                continue
            value = total + kj
            if (value > theta) if not best else (omega * value > theta):
                pick, theta = j, value
        if pick < 0:
            break
        chosen[pick] = True
        best.append(pick)
        total = theta
    worst = [j for j in range(len(k)) if not chosen[j]]
    return best, worst


def sorted_select(kl_per_dim: Sequence[float], omega: float) -> tuple[list[int], list[int]]:
    """The sorted simplification: the largest KLs in turn while ``K > (1-omega)/omega * selected``.

    Differs from :func:`greedy_select` in about 5% of random vectors
    (``docs/reference/original-implementation.md`` §1.6); a declared variant, not the default.
    """
    if not 0.0 < omega < 1.0:
        raise ValueError(f"omega must lie in (0, 1), got {omega}")
    k = np.asarray(_as_floats(kl_per_dim))
    if k.size == 0:
        return [], []
    order = np.argsort(-k, kind="stable")
    ks = k[order]
    if ks[0] <= 0.0:
        return [], list(range(k.size))
    ok = ks[1:] > (1.0 - omega) / omega * np.cumsum(ks)[:-1]
    m = 1 + int(np.cumprod(ok).sum())
    best = [int(j) for j in order[:m]]
    return best, sorted(int(j) for j in order[m:])


SELECTIONS = {"greedy": greedy_select, "sorted": sorted_select}
