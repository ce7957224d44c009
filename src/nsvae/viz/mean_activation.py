"""Mean-activation plots: what each latent's mean code does as each ground-truth factor varies.

:func:`dsprites_mean_activation` is the original figure (``docs/reference/original-implementation.md``
§5.1): one row per active latent (Var_x E[z_j|x] > 1e-2 over the images), and
three panels per row — the mean code over the 32 x 32 positions as a heat map
(rows posX, columns posY, as the original drew it; coolwarm; one colour range
shared by every latent), and one curve per shape against scale and against
orientation (y-limits shared by every latent; ColorBrewer Set1: square
green, ellipse red, heart blue). The original encodes all 737,280 images;
``codes`` may also cover a uniform random subset, whose means then estimate
the same quantities.

:func:`mean_activation` generalises it to any ground-truth dataset: one row
per active latent, one panel per factor with the mean code against the
factor's classes.

Both take posterior means already computed (``codes``) with their factor
classes, so they work with any encoder, and return a matplotlib ``Figure``.
"""

from __future__ import annotations

import numpy as np

from .curves import _pyplot

#: ColorBrewer Set1 colours the original used (brewer2mpl), per dSprites shape.
SHAPE_COLOURS = {"square": "#4daf4a", "ellipse": "#e41a1c", "heart": "#377eb8"}
ACTIVE_THRESHOLD = 1e-2


def active_units(codes: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Boolean ``(d,)``: latents whose mean code varies over the data (unbiased variance > threshold)."""
    codes = _check_codes(codes)
    if codes.shape[0] < 2:
        raise ValueError("active units need codes of at least 2 images")
    return codes.var(axis=0, ddof=1) > threshold


def factor_means(codes: np.ndarray, factors: np.ndarray, sizes, axes) -> np.ndarray:
    """Mean code for each combination of the factors ``axes``: ``(*[sizes[a] for a in axes], d)``.

    Combinations with no sample are NaN.
    """
    codes = _check_codes(codes)
    factors = np.asarray(factors, dtype=np.int64)
    if factors.shape[0] != codes.shape[0]:
        raise ValueError(f"{factors.shape[0]} factor rows for {codes.shape[0]} codes")
    shape = tuple(int(sizes[a]) for a in axes)
    flat = np.ravel_multi_index(tuple(factors[:, a] for a in axes), shape)
    cells = int(np.prod(shape))
    counts = np.bincount(flat, minlength=cells).astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=codes[:, j], minlength=cells) for j in range(codes.shape[1])], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return means.reshape(*shape, codes.shape[1])


def _check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D array (images, latents), got shape {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinite values")
    return codes


def _limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def dsprites_mean_activation(codes: np.ndarray, factors: np.ndarray, threshold: float = ACTIVE_THRESHOLD):
    """The original's mean-activation figure for dSprites (factors: shape, scale, orientation, posX, posY)."""
    plt = _pyplot()

    sizes = (3, 6, 40, 32, 32)
    active = np.flatnonzero(active_units(codes, threshold))
    pos = factor_means(codes, factors, sizes, (3, 4))[..., active]
    scale = factor_means(codes, factors, sizes, (0, 1))[..., active]
    rotation = factor_means(codes, factors, sizes, (0, 2))[..., active]
    rows = max(len(active), 1)
    fig, axes = plt.subplots(rows, 3, figsize=(3, rows), squeeze=False, gridspec_kw={"wspace": 0, "hspace": 0})
    if not len(active):
        for ax in axes[0]:
            ax.set_axis_off()
        axes[0, 1].text(0.5, 0.5, "no active latent", ha="center", va="center", fontsize=6)
        return fig
    vmin, vmax = _limits(pos)
    line_limits = _limits(np.concatenate([scale.ravel(), rotation.ravel()]))
    for row, j in enumerate(active):
        ax_pos, ax_scale, ax_rot = axes[row]
        ax_pos.imshow(pos[..., row], cmap="coolwarm", vmin=vmin, vmax=vmax, aspect="auto")
        for shape_class, (name, colour) in enumerate(SHAPE_COLOURS.items()):
            ax_scale.plot(scale[shape_class, :, row], color=colour, label=name)
            ax_rot.plot(rotation[shape_class, :, row], color=colour, label=name)
        for ax in (ax_scale, ax_rot):
            ax.set_ylim(*line_limits)
        for ax in (ax_pos, ax_scale, ax_rot):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_pos.set_ylabel(f"z{j}", rotation=0, labelpad=8, va="center", fontsize=7)
    for ax, label in zip(axes[-1], ("pos", "scale", "rotation")):
        ax.set_xlabel(label, fontsize=7)
    fig.supxlabel("Ground Truth", fontsize=7, y=-0.02)
    fig.supylabel("Learned Latent Variables", fontsize=7, x=-0.04)
    return fig


def mean_activation(
    codes: np.ndarray,
    factors: np.ndarray,
    factor_names,
    factor_sizes,
    threshold: float = ACTIVE_THRESHOLD,
    kl_per_dim=None,
):
    """Mean code of each active latent against each factor, for any ground-truth dataset.

    ``kl_per_dim`` (optional) orders the rows by KL, largest first, and labels them with it.
    """
    plt = _pyplot()

    active = np.flatnonzero(active_units(codes, threshold))
    if kl_per_dim is not None:
        kl = np.asarray(kl_per_dim, dtype=np.float64)
        active = active[np.argsort(-kl[active], kind="stable")]
    k = len(factor_names)
    per_factor = [factor_means(codes, factors, factor_sizes, (f,))[:, active] for f in range(k)]
    limits = _limits(np.concatenate([m.ravel() for m in per_factor])) if len(active) else (0.0, 1.0)
    rows = max(len(active), 1)
    fig, axes = plt.subplots(rows, k, figsize=(1.6 * k, 1.1 * rows), squeeze=False, sharey=True)
    for row in range(rows):
        for f in range(k):
            ax = axes[row, f]
            if len(active):
                ax.plot(per_factor[f][:, row], color="#377eb8", marker="." if factor_sizes[f] <= 10 else None)
                ax.set_ylim(*limits)
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
            if row == rows - 1:
                ax.set_xlabel(f"{factor_names[f]} ({factor_sizes[f]})", fontsize=7)
        if len(active):
            j = active[row]
            label = f"z{j}" if kl_per_dim is None else f"z{j}\nKL {kl_per_dim[j]:.2f}"
            axes[row, 0].set_ylabel(label, fontsize=7)
    if not len(active):
        axes[0, 0].text(0.5, 0.5, "no active latent", transform=axes[0, 0].transAxes, fontsize=7)
    fig.tight_layout()
    return fig


DSPRITES_FACTORS = ("shape", "scale", "orientation", "posX", "posY")


def encode_run(run, step: int | None, samples: int, seed: int):
    """``(dataset, factors, posterior means)`` of a run's images: all (``samples=0``) or ``samples`` random ones.

    Raises :class:`nsvae.errors.UserError` for a dataset without ground-truth factors.
    """
    from ..config import open_dataset
    from ..errors import UserError
    from ..train.latents import posterior_encoder

    data = open_dataset(run.config, progress=False)
    if not hasattr(data, "factor_sizes"):
        raise UserError(f"{run.config.data.dataset} has no ground-truth factors: the mean-activation plot needs them")
    encode = posterior_encoder(run.load_model(step))
    if samples and samples < len(data):
        indices = np.sort(np.random.default_rng(seed).choice(len(data), size=samples, replace=False))
    else:
        indices = np.arange(len(data))
    means = []
    for start in range(0, len(indices), 8192):
        chunk = indices[start : start + 8192]
        means.append(encode(data.observations_at(chunk, np.random.default_rng([seed, start])))[0])
    return data, data.factors_of(indices), np.concatenate(means)


def run_mean_activation(run, step: int | None = None, samples: int = 0, seed: int = 0):
    """The mean-activation figure of a run's checkpoint: the original's for dSprites, the general one otherwise."""
    data, factors, codes = encode_run(run, step, samples, seed)
    if tuple(data.factor_names) == DSPRITES_FACTORS:
        return dsprites_mean_activation(codes, factors)
    return mean_activation(codes, factors, data.factor_names, data.factor_sizes)
