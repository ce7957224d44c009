"""The entanglement protocol: codes made redundant, mixed, copied, synergistic or rotated, scored by every metric.

Tokui & Sato (ICLR 2022, arXiv:2108.13753) check that a disentanglement
metric responds to entanglement by attacking a representation with a knob
alpha and scoring it at each step. Here the attacked representation is a
known code of a dSprites-shaped grid (:class:`EntanglementGrid`: shape 3,
scale 6, orientation 8, posX 8, posY 8, and a hidden key of 8 values that
no metric sees), so every step's information terms are known:

- **base** (every kind at strength 0): the perfect code, latent l =
  level(y_l) in [-2, 2] with posterior std ``sigma`` (0.05; level spacing
  0.57 for 8 classes), one latent per factor.
- **redundancy** (alpha = 0, 0.5, 1, 1.5, 2): the authors' redundancy attack,
  as their code defines it (``beam2d/disen``, ``disen/attack/
  redundancy_attack.py`` and ``evaluation/routine.py``): z' = (z, alpha U z +
  eps), eps ~ N(0, I), U = I - (2/D) 1 1^T (an orthogonal reflection that
  mixes every latent into every copy). The copies are noisy: their posterior
  is N(alpha U mu, alpha^2 U diag(sigma^2) U^T + I), kept diagonal here
  (the dropped covariances are at most alpha sigma^2 = 0.005). The posterior
  mean of a copy is alpha U mu at every alpha > 0, so metrics that read only
  the mean code see the same copy at every step.
- **global_mixing** (alpha = 0, 0.025, 0.05, 0.1, 0.5): the authors'
  global mixing attack (``disen/attack/global_mixing_attack.py``): each
  Gaussian latent's posterior mean, variance and sample become (1 - alpha) v
  + alpha sum_j v_j. Latent l is then level(y_l) + alpha sum_{j != l}
  level(y_j): every latent carries every factor, all latents together still
  everything (the map is invertible for alpha < 1). The authors ran it at
  alpha = 0.5 only (``experiments/train_vae.py``, ``train_joint_vae.py``,
  ``train_cascade_vae.py`` in the repository's history: ``mix_rate=0.5``),
  the last step; the steps below it are ours: on a code this sharp the rest
  of the latents learns y_l once alpha times a level spacing clears the
  posterior std (alpha ~ sigma / 0.57 ~ 0.1), so the fall happens there and
  alpha = 0.5 is past it. The posterior is the one their code declares:
  diagonal, variance (1 - alpha) sigma^2 + alpha d sigma^2 (the mixed
  sample's own variance is sigma^2 (1 + alpha^2 (d - 1)), and its latents
  are correlated; both differences are of order sigma^2 = 0.0025 against a
  level spacing of 0.57).
- **noised_copy** (1/std = 0, 0.25, 0.5, 1, 2, i.e. std = inf, 4, 2, 1,
  0.5): the authors' noised copy attack (``disen/attack/noised_copy.py``):
  one more latent per latent, z_{d+l} = z_l + eps with eps ~ N(0, std^2),
  whose posterior their code declares N(mu_l, sigma^2 + std^2). The
  strength is the copy's precision 1/std (0: no copy, the perfect code), so
  that entanglement grows with it; the authors ran std = 2 (``noise=2.0`` in
  the same training scripts; ``NoisedCopyAttack(model, 2.0)``), the middle
  step. The authors draw one eps for all copies (and all points of a
  batch); here each copy's posterior is the declared diagonal one, so the
  metrics draw independent noise per copy. Given the other latents, the
  rest knows y_l through level(y_l) + N(0, sigma^2 + std^2); the copy's mean
  is mu_l at every step, so metrics that read only the mean code see an
  exact duplicate of every latent at every step.
- **synergy** (beta = 0, 0.25, 0.5, 0.75, 1): a one-time pad with a dial
  (ours; the paper's own synergy construction could not be read here). Key
  u uniform on 0..Q-1 (the hidden factor), r_l = round(|V_l|^beta) and
  k_l = floor(u r_l / Q); latent l becomes level((y_l + k_l) mod |V_l|), and
  one latent level(u) is appended. Latent l alone then knows log|V_l| -
  H(k_l) of y_l, the rest nothing, all together everything: the synergy
  atom is exactly H(k_l), about beta H(y_l) (:func:`pad_key_entropy`).
- **rotation** (theta = 0, pi/16, pi/8, 3pi/16, pi/4): the latents of
  (scale, orientation) and of (posX, posY) rotated by theta in their plane
  (ours; the paper's introduction motivates its framework by a rotated
  code). Posterior std unchanged (isotropic), so the code stays diagonal.
  Each rotated latent mixes two factors: its own information shrinks, the
  other latent of the pair learns it, and the pair together keeps all.

:func:`run_protocol` scores every step with :func:`nsvae.metrics.evaluate`
(the table of all 73,728 images for the posterior metrics) and returns one
row per (kind, step); ``benchmarks/entanglement.py`` writes the table and the
figure of docs/metrics.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from ..data.factor_grid import FactorGrid
from .evaluate import DEFAULT_METRICS, evaluate

SIZES = (3, 6, 8, 8, 8)
NAMES = ("shape", "scale", "orientation", "posX", "posY")
KEY_LEVELS = 8
SIGMA = 0.05
KINDS = ("redundancy", "global_mixing", "noised_copy", "synergy", "rotation")
#: The kinds of Tokui & Sato's own code (``beam2d/disen``, ``disen/attack/``); the others are ours.
AUTHORS_KINDS = ("redundancy", "global_mixing", "noised_copy")
STRENGTHS: dict[str, tuple[float, ...]] = {
    "redundancy": (0.0, 0.5, 1.0, 1.5, 2.0),  # the authors' alphas (evaluation/routine.py)
    "global_mixing": (0.0, 0.025, 0.05, 0.1, 0.5),  # up to the authors' mix_rate = 0.5
    "noised_copy": (0.0, 0.25, 0.5, 1.0, 2.0),  # 1 / std: std = inf, 4, 2 (the authors'), 1, 0.5
    "synergy": (0.0, 0.25, 0.5, 0.75, 1.0),
    "rotation": tuple(i * math.pi / 16 for i in range(5)),
}
#: The rotated latent pairs of the rotation kind: (scale, orientation) and (posX, posY) (those that exist).
ROTATED_PAIRS = ((1, 2), (3, 4))
#: Reduced protocol sizes of the published run (docs/metrics.md): DCI's gradient boosting on 2,000 / 1,000
#: points instead of 10,000 / 5,000; every other metric at its default protocol.
PROTOCOL_OVERRIDES: dict[str, dict] = {"dci": {"num_train": 2000, "num_test": 1000}}
#: The numbers kept per metric: (column, field of the metric's result).
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "factor_vae_score": (("factor_vae_score", "score"),),
    "beta_vae_score": (("beta_vae_score", "score"),),
    "mig": (("mig", "score"),),
    "chen_mig": (("chen_mig", "score"),),
    "dci": (
        ("dci", "disentanglement"),
        ("dci.completeness", "completeness"),
        ("dci.informativeness", "informativeness_test"),
    ),
    "sap": (("sap", "score"),),
    "modularity_explicitness": (("modularity", "modularity"), ("explicitness", "explicitness_test")),
    "unsupervised": (("unsupervised.mutual_info", "mutual_info_score"),),
    "active_units": (("active_units", "num_active"),),
    "synergy": (("synergy.s_max", "s_max"), ("synergy.wms", "wms")),
    "unibound": (
        ("unibound", "unibound"),
        ("unibound.upper", "unibound_upper"),
        ("unibound.redundancy_lower", "redundancy_lower"),
        ("unibound.synergy_lower", "synergy_lower"),
    ),
}


class EntanglementGrid(FactorGrid):
    """A row-major factor grid with a hidden key; the observation is the full factor vector, key included.

    Exposed: ``sizes`` (dSprites' five factors, coarser by default); hidden:
    the last axis, ``key_levels`` values that only the synergy kind's code
    reads. Shape is nominal, as in dSprites.
    """

    name = "entanglement_grid"

    def __init__(self, sizes: Sequence[int] = SIZES, names: Sequence[str] = NAMES, key_levels: int = KEY_LEVELS):
        if len(sizes) != len(names):
            raise ValueError(f"{len(sizes)} factor sizes but {len(names)} names")
        sizes = tuple(int(s) for s in sizes) + (int(key_levels),)
        super().__init__(sizes, tuple(names) + ("key",), exposed=range(len(sizes) - 1), nominal=("shape",))

    def describe(self) -> dict:
        return {"name": self.name, "factor_sizes": list(self._sizes[:-1]), "key_levels": self._sizes[-1]}


def level(classes, size: int) -> np.ndarray:
    """Class index -> [-2, 2], evenly spaced."""
    return -2.0 + 4.0 * np.asarray(classes, dtype=np.float64) / max(int(size) - 1, 1)


def householder(d: int) -> np.ndarray:
    """U = I - (2/d) 1 1^T: the orthogonal mixing of the redundancy attack."""
    return np.eye(d) - 2.0 / d


def pad_shifts(size: int, strength: float, key_levels: int = KEY_LEVELS) -> np.ndarray:
    """k(u) for u = 0..Q-1: the shift of a factor of ``size`` classes under the synergy kind at ``strength``."""
    r = min(int(size), max(1, round(size**strength)))
    return (np.arange(key_levels) * r) // key_levels


def pad_key_entropy(size: int, strength: float, key_levels: int = KEY_LEVELS) -> float:
    """H(k) in nats: the synergy atom of (y_l; z_l, z_\\l) under the synergy kind (with a sharp posterior)."""
    p = np.bincount(pad_shifts(size, strength, key_levels)) / key_levels
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def entangled_code(
    kind: str, strength: float, sizes: Sequence[int] = SIZES, key_levels: int = KEY_LEVELS, sigma: float = SIGMA
):
    """``represent_posterior(obs) -> (mean, logvar)`` of the code of ``kind`` at ``strength`` (module docstring).

    ``obs`` are :class:`EntanglementGrid` observations (the factor vector, the
    key last). Strength 0 is the same perfect code for every kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown entanglement kind {kind!r}; choose one of {', '.join(KINDS)}")
    sizes = tuple(int(s) for s in sizes)
    k = len(sizes)
    lv0 = 2.0 * math.log(sigma)
    shifts = [pad_shifts(size, strength, key_levels) for size in sizes] if kind == "synergy" else None

    def represent_posterior(obs):
        f = np.rint(np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)).astype(np.int64)
        y, key = f[:, :k], f[:, k]
        mean = np.stack([level(y[:, i], sizes[i]) for i in range(k)], axis=1)
        logvar = np.full(mean.shape, lv0)
        if strength == 0:
            return mean, logvar
        if kind == "redundancy":
            copy = strength * mean @ householder(k).T
            copy_lv = np.full(copy.shape, math.log1p((strength * sigma) ** 2))  # the rows of U have unit norm
            return np.concatenate([mean, copy], axis=1), np.concatenate([logvar, copy_lv], axis=1)
        if kind == "global_mixing":
            mixed = (1.0 - strength) * mean + strength * mean.sum(axis=1, keepdims=True)
            var = np.exp(logvar)
            mixed_var = (1.0 - strength) * var + strength * var.sum(axis=1, keepdims=True)
            return mixed, np.log(mixed_var)
        if kind == "noised_copy":
            copy_lv = np.full(mean.shape, math.log(sigma**2 + strength**-2))
            return np.concatenate([mean, mean], axis=1), np.concatenate([logvar, copy_lv], axis=1)
        if kind == "synergy":
            padded = [level((y[:, i] + shifts[i][key]) % sizes[i], sizes[i]) for i in range(k)]
            out = np.stack([*padded, level(key, key_levels)], axis=1)
            return out, np.full(out.shape, lv0)
        c, s = math.cos(strength), math.sin(strength)
        out = mean.copy()
        for a, b in (pair for pair in ROTATED_PAIRS if pair[1] < k):
            out[:, a] = c * mean[:, a] + s * mean[:, b]
            out[:, b] = -s * mean[:, a] + c * mean[:, b]
        return out, logvar

    return represent_posterior


def scores_of(result: dict) -> dict[str, float]:
    """The numbers of :data:`FIELDS` from an ``evaluate`` result (``None`` where a metric did not run)."""
    row: dict[str, float] = {}
    for metric, fields in FIELDS.items():
        res = result["metrics"].get(metric)
        for column, field in fields:
            value = None if res is None else res.get(field)
            row[column] = None if value is None else float(value)
    return row


def run_protocol(
    kinds: Sequence[str] = KINDS,
    strengths: dict[str, Sequence[float]] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    overrides: dict[str, dict] | None = None,
    seeds: Sequence[int] = (0,),
    sizes: Sequence[int] = SIZES,
    key_levels: int = KEY_LEVELS,
    sigma: float = SIGMA,
    log=None,
) -> list[dict]:
    """Score every step of every kind; one row per (kind, step, seed): ``kind``, ``step``, ``strength``,
    ``seed``, ``seconds`` and the columns of :data:`FIELDS`.

    Strength 0 is evaluated once per seed and shared by the kinds (the same
    code). ``overrides`` defaults to :data:`PROTOCOL_OVERRIDES`; ``log(str)``
    reports progress.
    """
    strengths = {kind: tuple(STRENGTHS[kind]) for kind in kinds} if strengths is None else dict(strengths)
    overrides = PROTOCOL_OVERRIDES if overrides is None else overrides
    names = NAMES[: len(sizes)] if len(sizes) <= len(NAMES) else tuple(f"factor_{i}" for i in range(len(sizes)))
    data = EntanglementGrid(sizes, names, key_levels)
    rows: list[dict] = []
    for seed in seeds:
        base: dict | None = None
        for kind in kinds:
            for step, strength in enumerate(strengths[kind]):
                if strength == 0 and base is not None:
                    scores, seconds = base
                else:
                    t0 = time.perf_counter()
                    result = evaluate(
                        data,
                        represent_posterior=entangled_code(kind, strength, sizes, key_levels, sigma),
                        metrics=metrics,
                        overrides=overrides,
                        seed=seed,
                        progress=False,
                    )
                    scores, seconds = scores_of(result), time.perf_counter() - t0
                    if strength == 0:
                        base = (scores, seconds)
                rows.append(
                    {
                        "kind": kind,
                        "step": step,
                        "strength": float(strength),
                        "seed": seed,
                        "seconds": seconds,
                        **scores,
                    }
                )
                if log is not None:
                    log(f"{kind} step {step} (strength {strength:.3f}) seed {seed}: {seconds:.0f} s")
    return rows
