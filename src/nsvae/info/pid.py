"""Williams–Beer partial information decomposition with I_min redundancy.

Williams & Beer (2010), "Nonnegative decomposition of multivariate
information", arXiv:1004.2515. The redundancy lattice of n predictors has one
node per antichain of non-empty subsets of {1..n} (4, 18 and 166 nodes for
n = 2, 3, 4), ordered by alpha <= beta iff every source of beta contains some
source of alpha. The redundancy of a node is

    I_min(alpha; Y) = sum_y p(y) min_{A in alpha} I(A; Y=y),

with I(A; Y=y) the specific information of the joint source A, and the
partial-information atoms follow by Moebius inversion over the lattice:
I_min(alpha) = sum_{beta <= alpha} Pi(beta).

Nodes are written as in the paper with 1-based predictor numbers:
``{1}{2}`` (redundancy), ``{1}`` (unique to X1), ``{12}`` (synergy),
``{1}{23}`` and so on.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._distribution import as_pmf, group_target_table, log_base, predictor_groups
from .shannon import _specific_information_nats

#: Largest number of predictors with a lattice decomposition (n = 5 has 7,579 nodes).
MAX_LATTICE_PREDICTORS = 4

Antichain = tuple[frozenset, ...]


@dataclass(frozen=True)
class PID:
    """A partial information decomposition (values in the unit requested).

    Attributes:
        redundancy: the bottom atom {1}{2}...{n}.
        unique: the atoms {i}, one per predictor, in predictor order.
        synergy: the top atom {12...n}.
        atoms: every atom by node label, in a linear extension of the lattice
            (bottom first).
        redundancies: I_min of every node (the cumulative values).
        mutual_information: I(X; Y), the sum of all atoms.
    """

    redundancy: float
    unique: tuple[float, ...]
    synergy: float
    atoms: dict[str, float] = field(repr=False)
    redundancies: dict[str, float] = field(repr=False)
    mutual_information: float = 0.0


def node_label(node: Antichain) -> str:
    """Williams–Beer notation of a lattice node, e.g. ``{1}{23}`` (1-based)."""
    return "".join("{" + "".join(str(i + 1) for i in sorted(source)) + "}" for source in node)


def _is_antichain(sources: Sequence[frozenset]) -> bool:
    return all(not (a <= b or b <= a) for a, b in itertools.combinations(sources, 2))


@functools.cache
def redundancy_lattice(n: int) -> tuple[tuple[Antichain, ...], np.ndarray]:
    """The nodes of the n-predictor lattice (bottom first) and its Moebius matrix.

    The Moebius matrix ``mu`` satisfies ``atoms = mu @ redundancies`` for
    vectors indexed like the nodes.
    """
    if not 1 <= n <= MAX_LATTICE_PREDICTORS:
        raise ValueError(
            f"the redundancy lattice is available for 1 to {MAX_LATTICE_PREDICTORS} predictors, not {n}; "
            "group predictors with predictors=[(0, 1), ...] to use fewer"
        )
    subsets = [frozenset(c) for r in range(1, n + 1) for c in itertools.combinations(range(n), r)]
    nodes: list[Antichain] = []
    for r in range(1, len(subsets) + 1):
        for combo in itertools.combinations(subsets, r):
            if _is_antichain(combo):
                nodes.append(tuple(sorted(combo, key=lambda s: (len(s), sorted(s)))))

    def below(a: Antichain, b: Antichain) -> bool:  # a <= b
        return all(any(sa <= sb for sa in a) for sb in b)

    size = len(nodes)
    zeta = np.array([[1.0 if below(b, a) else 0.0 for b in nodes] for a in nodes])
    # Sort bottom-first by the number of nodes below (a linear extension).
    order = np.argsort(zeta.sum(axis=1), kind="stable")
    nodes = [nodes[i] for i in order]
    zeta = zeta[np.ix_(order, order)]
    mobius = np.rint(np.linalg.inv(zeta))
    assert np.array_equal(mobius @ zeta, np.eye(size))
    return tuple(nodes), mobius


def pid(p, predictors: Sequence[int | Iterable[int]] | None = None, *, base: float | str = 2) -> PID:
    """Williams–Beer PID (I_min) of 2 to 4 predictors (each may be a group of axes) about Y.

    For two predictors: ``redundancy`` + ``unique[0]`` = I(X1; Y),
    ``redundancy`` + ``unique[1]`` = I(X2; Y), and all four atoms sum to
    I(X1, X2; Y).
    """
    arr = as_pmf(p, min_ndim=2)
    groups = predictor_groups(arr.ndim, predictors)
    n = len(groups)
    if not 2 <= n <= MAX_LATTICE_PREDICTORS:
        raise ValueError(
            f"the partial information decomposition needs 2 to {MAX_LATTICE_PREDICTORS} predictors, not {n}; "
            "group predictors with predictors=[(0, 1), ...] to use fewer"
        )
    nodes, mobius = redundancy_lattice(n)
    py = arr.reshape(-1, arr.shape[-1]).sum(axis=0)
    ok = py > 0
    # Specific information of every coalition of predictors (a non-empty subset).
    spec: dict[frozenset, np.ndarray] = {}
    for r in range(1, n + 1):
        for combo in itertools.combinations(range(n), r):
            axes = tuple(sorted({ax for i in combo for ax in groups[i]}))
            spec[frozenset(combo)] = _specific_information_nats(group_target_table(arr, axes))[ok]
    weights = py[ok]
    red = np.array([float(weights @ np.min([spec[s] for s in node], axis=0)) for node in nodes])
    atoms = mobius @ red
    scale = log_base(base)
    red /= scale
    atoms /= scale
    labels = [node_label(node) for node in nodes]
    atom_of = dict(zip(labels, atoms.tolist()))
    bottom = "".join("{" + str(i + 1) + "}" for i in range(n))
    top = "{" + "".join(str(i + 1) for i in range(n)) + "}"
    return PID(
        redundancy=atom_of[bottom],
        unique=tuple(atom_of["{" + str(i + 1) + "}"] for i in range(n)),
        synergy=atom_of[top],
        atoms=atom_of,
        redundancies=dict(zip(labels, red.tolist())),
        mutual_information=float(atoms.sum()),
    )
