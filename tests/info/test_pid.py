import itertools

import numpy as np
import pytest

from nsvae import info
from nsvae.info.pid import node_label, redundancy_lattice
from tests.conftest import random_pmf


@pytest.mark.parametrize("n, size", [(1, 1), (2, 4), (3, 18), (4, 166)])
def test_lattice_sizes_are_dedekind_numbers_minus_two(n, size):
    nodes, mobius = redundancy_lattice(n)
    assert len(nodes) == size
    assert mobius.shape == (size, size)
    assert node_label(nodes[0]) == "".join(f"{{{i + 1}}}" for i in range(n))
    assert node_label(nodes[-1]) == "{" + "".join(str(i + 1) for i in range(n)) + "}"


def test_three_predictor_lattice_labels():
    nodes, _ = redundancy_lattice(3)
    labels = {node_label(a) for a in nodes}
    assert {"{1}{2}{3}", "{1}{23}", "{12}{13}{23}", "{12}{13}", "{123}", "{2}"} <= labels
    # An antichain never holds a source and one of its supersets.
    assert "{1}{12}" not in labels


def test_moebius_inversion_reconstructs_redundancies(rng):
    for n in (2, 3, 4):
        shape = (2,) * n + (3,)
        p = random_pmf(rng, shape)
        d = info.pid(p)
        nodes, _ = redundancy_lattice(n)

        def below(a, b):
            return all(any(sa <= sb for sa in a) for sb in b)

        labels = [node_label(a) for a in nodes]
        for alpha, label in zip(nodes, labels):
            total = sum(d.atoms[lb] for beta, lb in zip(nodes, labels) if below(beta, alpha))
            assert total == pytest.approx(d.redundancies[label], abs=1e-12)
        assert sum(d.atoms.values()) == pytest.approx(info.mutual_information(p), abs=1e-12)


def test_two_predictor_pid_identities(rng):
    for _ in range(10):
        p = random_pmf(rng, (3, 4, 3))
        d = info.pid(p)
        i1 = info.mutual_information(p, [0])
        i2 = info.mutual_information(p, [1])
        assert d.redundancy + d.unique[0] == pytest.approx(i1, abs=1e-12)
        assert d.redundancy + d.unique[1] == pytest.approx(i2, abs=1e-12)
        assert d.redundancy + sum(d.unique) + d.synergy == pytest.approx(info.mutual_information(p), abs=1e-12)
        # I_min redundancy is a literal sum_y p(y) min_i I(X_i; Y=y).
        py = p.sum(axis=(0, 1))
        s = np.minimum(info.specific_information(p, 0), info.specific_information(p, 1))
        assert d.redundancy == pytest.approx(float(py @ s), abs=1e-12)
        assert d.redundancy >= -1e-12 and min(d.unique) >= -1e-12 and d.synergy >= -1e-12


def test_pid_atoms_are_nonnegative_for_three_predictors(rng):
    # Williams & Beer prove the I_min atoms are non-negative.
    for _ in range(10):
        d = info.pid(random_pmf(rng, (2, 3, 2, 3)))
        assert min(d.atoms.values()) >= -1e-12


def test_pid_with_grouped_predictors_equals_pid_of_merged_axes(rng):
    p = random_pmf(rng, (2, 2, 3, 2))
    merged = p.reshape(4, 3, 2)
    a = info.pid(p, [(0, 1), 2])
    b = info.pid(merged)
    assert a.atoms == pytest.approx(b.atoms, abs=1e-12)


def test_too_many_predictors():
    p = np.full((2,) * 6, 1 / 64)
    with pytest.raises(ValueError, match="2 to 4 predictors, not 5"):
        info.pid(p)
    # ...but grouping makes it possible.
    assert info.pid(p, [(0, 1), (2, 3), 4]).synergy == pytest.approx(0.0, abs=1e-12)


def test_unique_information_of_copy_gate_matches_williams_beer_quirk():
    d = info.pid(info.gate("copy"))
    assert (d.redundancy, d.synergy) == pytest.approx((1.0, 1.0))
    assert all(abs(u) < 1e-12 for u in d.unique)
    assert list(itertools.islice(d.atoms, 1)) == ["{1}{2}"]
