"""Closed-form values of the canonical gates (bits)."""

import math

import pytest

from nsvae import info

H_AND = 2 - 0.75 * math.log2(3)  # I(X1,X2; AND) = H(1/4) = 0.811278...
I_SINGLE_AND = H_AND - 0.5  # I(X1; AND) = 0.311278...

# gate: (I, I_max, S_max, WMS, I_VK, S_VK, (redundancy, u1, u2, synergy))
EXPECTED = {
    "xor": (1.0, 0.0, 1.0, 1.0, 0.0, 1.0, (0.0, 0.0, 0.0, 1.0)),
    "and": (H_AND, I_SINGLE_AND, 0.5, H_AND - 2 * I_SINGLE_AND, I_SINGLE_AND, 0.5, (I_SINGLE_AND, 0.0, 0.0, 0.5)),
    "or": (H_AND, I_SINGLE_AND, 0.5, H_AND - 2 * I_SINGLE_AND, I_SINGLE_AND, 0.5, (I_SINGLE_AND, 0.0, 0.0, 0.5)),
    "rdn": (1.0, 1.0, 0.0, -1.0, 1.0, 0.0, (1.0, 0.0, 0.0, 0.0)),
    "unq": (1.0, 1.0, 0.0, 0.0, 1.0, 0.0, (0.0, 1.0, 0.0, 0.0)),
    "copy": (2.0, 1.0, 1.0, 0.0, 2.0, 0.0, (1.0, 0.0, 0.0, 1.0)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_two_input_gates(name):
    p = info.gate(name)
    i, imax, smax, wms, ivk, svk, (red, u1, u2, syn) = EXPECTED[name]
    assert info.mutual_information(p) == pytest.approx(i, abs=1e-12)
    assert info.i_max(p) == pytest.approx(imax, abs=1e-12)
    assert info.s_max(p) == pytest.approx(smax, abs=1e-12)
    assert info.wms(p) == pytest.approx(wms, abs=1e-12)
    assert info.i_vk(p) == pytest.approx(ivk, abs=1e-9)
    assert info.s_vk(p) == pytest.approx(svk, abs=1e-9)
    d = info.pid(p)
    assert (d.redundancy, *d.unique, d.synergy) == pytest.approx((red, u1, u2, syn), abs=1e-12)
    assert d.mutual_information == pytest.approx(i, abs=1e-12)


def test_and_gate_value_is_h_of_a_quarter():
    assert H_AND == pytest.approx(0.8112781244591328, abs=1e-15)


def test_three_input_parity_is_pure_synergy():
    p = info.gate("parity3")
    assert info.mutual_information(p) == pytest.approx(1.0)
    for pair in ([(0, 1)], [(0, 2)], [(1, 2)]):
        assert info.mutual_information(p, pair) == pytest.approx(0.0, abs=1e-15)
    assert info.s_max(p) == pytest.approx(1.0)
    assert info.wms(p) == pytest.approx(1.0)
    assert info.s_vk(p) == pytest.approx(1.0, abs=1e-9)
    d = info.pid(p)
    assert len(d.atoms) == 18
    assert d.atoms["{123}"] == pytest.approx(1.0)
    assert sum(abs(v) for k, v in d.atoms.items() if k != "{123}") == pytest.approx(0.0, abs=1e-12)
    # Pairs as predictors: any two of the three bits are still independent of Y.
    assert info.s_vk(p, [(0, 1), 2]) == pytest.approx(1.0, abs=1e-9)


def test_grouping_inputs_of_parity_removes_synergy_between_groups_only():
    # With groups {X1,X2} and {X3}: XOR(X1,X2) is not available to either group alone.
    p = info.gate("parity3")
    assert info.s_max(p, [(0, 1), (2,)]) == pytest.approx(1.0)
    # One group holding everything: no synergy at all.
    assert info.s_max(p, [(0, 1, 2)]) == pytest.approx(0.0, abs=1e-15)
    assert info.s_vk(p, [(0, 1, 2)]) == pytest.approx(0.0, abs=1e-12)


def test_unknown_gate():
    with pytest.raises(ValueError, match="unknown gate"):
        info.gate("nand")
