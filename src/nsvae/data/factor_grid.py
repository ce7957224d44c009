"""A synthetic ground-truth dataset whose observation is its own factor vector.

For checking metrics on constructed codes: a representation is then any
function of the factors (``represent_posterior(obs)`` reads the classes from
``obs``), so the truth of every information quantity is known. The grid is
row-major over ``all_factor_sizes``; factors left out of ``exposed`` are
hidden from the metrics (drawn uniformly by ``index_of``) but still in the
observation, so a code can depend on them (a coin flip per image, say).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import GroundTruthData


class FactorGrid(GroundTruthData):
    """Every combination of ``sizes`` once; the observation is the full factor vector as a ``(1, 1, K)`` image."""

    name = "factor_grid"

    def __init__(
        self,
        sizes: Sequence[int],
        names: Sequence[str] | None = None,
        exposed: Sequence[int] | None = None,
        nominal: Sequence[str] | None = None,
    ):
        self._sizes = tuple(int(s) for s in sizes)
        self._names = tuple(names) if names else tuple(f"f{i}" for i in range(len(self._sizes)))
        if len(self._names) != len(self._sizes):
            raise ValueError(f"{len(self._sizes)} factor sizes but {len(self._names)} names")
        self._exposed = tuple(range(len(self._sizes))) if exposed is None else tuple(int(e) for e in exposed)
        if nominal is not None:  # else the class's declaration (none by default)
            self.all_nominal_factors = tuple(nominal)

    @property
    def all_factor_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def all_factor_sizes(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def exposed_factors(self) -> tuple[int, ...]:
        return self._exposed

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (1, 1, len(self._sizes))

    def observations_at(self, indices, rng=None) -> np.ndarray:
        full = np.stack(np.unravel_index(np.asarray(indices), self._sizes), axis=1)
        return full.astype(np.float32).reshape(-1, 1, 1, len(self._sizes))
