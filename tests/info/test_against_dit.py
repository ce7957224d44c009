"""Cross-check with dit (a test-only dependency) on 50+ seeded random distributions.

dit's closed forms are compared: entropy, mutual information, specific
information (through I_max / S_max), WMS and the Williams–Beer I_min PID. S_VK
is compared with a generic conic solver (test_vk.py), not with dit's
optimisers, whose results carry no certificate.
"""

import itertools

import numpy as np
import pytest

from nsvae import info
from nsvae.info.pid import node_label, redundancy_lattice
from tests.conftest import random_pmf

dit = pytest.importorskip("dit")
from dit.pid import PID_WB  # noqa: E402
from dit.pid.measures.imin import s_i  # noqa: E402

CASES = [((3, 3, 3), seed) for seed in range(15)] + [((2, 4, 3), seed) for seed in range(15)]
CASES += [((2, 2, 2, 2), seed) for seed in range(12)] + [((2, 3, 2, 3), seed) for seed in range(10)]


def to_dit(p):
    outcomes = [o for o in itertools.product(*[range(s) for s in p.shape]) if p[o] > 0]
    return dit.Distribution(outcomes, [p[o] for o in outcomes])


def dit_atom_key(node):
    return tuple(sorted((tuple(sorted(s)) for s in node), key=lambda s: (len(s), s)))


@pytest.mark.parametrize("shape, seed", CASES, ids=[f"{'x'.join(map(str, s))}-{k}" for s, k in CASES])
def test_matches_dit(shape, seed):
    rng = np.random.default_rng(1000 + seed)
    p = random_pmf(rng, shape, zero_fraction=0.15 if seed % 3 == 0 else 0.0)
    d = to_dit(p)
    n = p.ndim - 1
    sources = [[i] for i in range(n)]
    target = [n]

    assert info.entropy(p) == pytest.approx(dit.shannon.entropy(d), abs=1e-10)
    whole = dit.shannon.mutual_information(d, list(range(n)), target)
    assert info.mutual_information(p) == pytest.approx(whole, abs=1e-10)
    singles = [dit.shannon.mutual_information(d, s, target) for s in sources]
    assert info.wms(p) == pytest.approx(whole - sum(singles), abs=1e-10)

    # I_max from dit's specific information s_i.
    target_dist = d.marginal(target)
    i_max = 0.0
    for y in target_dist.outcomes:
        i_max += target_dist[y] * max(s_i(d, s, target, y) for s in sources)
    assert info.i_max(p) == pytest.approx(i_max, abs=1e-10)
    assert info.s_max(p) == pytest.approx(max(0.0, whole - i_max), abs=1e-10)

    # The whole Williams–Beer lattice.
    ours = info.pid(p)
    theirs = PID_WB(d, sources, target)
    nodes, _ = redundancy_lattice(n)
    for node in nodes:
        assert ours.atoms[node_label(node)] == pytest.approx(theirs.get_pi(dit_atom_key(node)), abs=1e-9)
