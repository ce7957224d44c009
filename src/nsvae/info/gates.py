"""Canonical distributions of the PID literature, with their known values.

Each gate has two independent uniform binary inputs (three for ``parity3``)
and a deterministic target. Values in bits (Williams & Beer 2010; Griffith &
Koch 2014; Bertschinger et al. 2014):

=========  =====  =====  =====  =====  ======================================
gate       I      S_max  WMS    S_VK   I_min PID (redundancy, u1, u2, synergy)
=========  =====  =====  =====  =====  ======================================
xor        1      1      1      1      (0, 0, 0, 1)
and / or   0.811  0.5    0.189  0.5    (0.311, 0, 0, 0.5)
rdn        1      0      -1     0      (1, 0, 0, 0)
unq        1      0      0      0      (0, 1, 0, 0)
copy       2      1      0      0      (1, 0, 0, 1)
parity3    1      1      1      1      synergy atom {123} = 1, all others 0
=========  =====  =====  =====  =====  ======================================

``rdn`` copies one uniform bit to both inputs and the target; ``unq`` has
Y = X1; ``copy`` has Y = (X1, X2) with four outcomes.
"""

from __future__ import annotations

import itertools

import numpy as np

GATES = ("xor", "and", "or", "rdn", "unq", "copy", "parity3")


def gate(name: str) -> np.ndarray:
    """The joint pmf of a canonical gate (predictors first, target last)."""
    key = name.lower()
    if key == "xor":
        return _two_input(lambda a, b: a ^ b)
    if key == "and":
        return _two_input(lambda a, b: a & b)
    if key == "or":
        return _two_input(lambda a, b: a | b)
    if key == "unq":
        return _two_input(lambda a, b: a)
    if key == "copy":
        p = np.zeros((2, 2, 4))
        for a, b in itertools.product(range(2), repeat=2):
            p[a, b, 2 * a + b] = 0.25
        return p
    if key == "rdn":
        p = np.zeros((2, 2, 2))
        p[0, 0, 0] = p[1, 1, 1] = 0.5
        return p
    if key == "parity3":
        p = np.zeros((2, 2, 2, 2))
        for a, b, c in itertools.product(range(2), repeat=3):
            p[a, b, c, a ^ b ^ c] = 0.125
        return p
    raise ValueError(f"unknown gate {name!r}; choose one of {', '.join(GATES)}")


def _two_input(f) -> np.ndarray:
    p = np.zeros((2, 2, 2))
    for a, b in itertools.product(range(2), repeat=2):
        p[a, b, f(a, b)] += 0.25
    return p
