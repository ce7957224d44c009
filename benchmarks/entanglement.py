"""The entanglement protocol (Tokui & Sato 2022): every nsvae metric on codes attacked step by step.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/entanglement.py                 # run, write the CSV, the figure, print the table
    .venv/bin/python benchmarks/entanglement.py --from-csv           # table and figure again from the CSV

The codes, the grid and the five kinds are :mod:`nsvae.metrics.entanglement`'s
(docstring there; docs/metrics.md): the authors' redundancy, global mixing
and noised copy attacks, and our one-time-pad dial (synergy) and rotation.
Each step is scored by ``nsvae.metrics.evaluate`` with every metric at its default protocol except
DCI (gradient boosting on 2,000 / 1,000 points instead of 10,000 / 5,000:
``entanglement.PROTOCOL_OVERRIDES``), with seeds 0, 1, 2; the table and the
figure show the mean over seeds, the CSV every seed. Writes
``benchmarks/entanglement.csv`` and ``docs/figures/entanglement.png`` and
prints the markdown table of docs/metrics.md. 21 distinct codes a seed,
10-62 s each: 1,146 s for the three seeds on the shared 2-core machine
(2026-12-05, while training runs used it, load average 3-4; the first
three kinds took 583 s, 11-19 s a code, in an earlier run).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nsvae.metrics import entanglement as ent

REPO = Path(__file__).resolve().parents[1]
CSV = REPO / "benchmarks" / "entanglement.csv"
FIGURE = REPO / "docs" / "figures" / "entanglement.png"
#: One line per metric (its headline number) in the figure and the table, with its label.
LINES = {
    "factor_vae_score": "FactorVAE score",
    "beta_vae_score": "β-VAE score",
    "mig": "MIG (binned)",
    "chen_mig": "MIG (Chen)",
    "dci": "DCI disentanglement",
    "sap": "SAP",
    "modularity": "modularity",
    "unsupervised.mutual_info": "unsupervised: mean pairwise MI*",
    "active_units": "active units*",
    "synergy.s_max": "synergy S_max",
    "unibound": "UniBound",
}
#: Further rows of the table (not drawn).
EXTRA = {
    "dci.completeness": "DCI completeness",
    "dci.informativeness": "DCI informativeness",
    "explicitness": "explicitness",
    "synergy.wms": "synergy WMS",
    "unibound.upper": "UniBound upper (U's upper bound)",
    "unibound.redundancy_lower": "PID: redundancy lower bound",
    "unibound.synergy_lower": "PID: synergy lower bound",
}
COLORS = {
    "factor_vae_score": "tab:blue",
    "beta_vae_score": "tab:orange",
    "mig": "tab:green",
    "chen_mig": "tab:olive",
    "dci": "tab:purple",
    "sap": "tab:brown",
    "modularity": "tab:pink",
    "unsupervised.mutual_info": "tab:gray",
    "active_units": "tab:cyan",
    "synergy.s_max": "tab:red",
    "unibound": "black",
}
#: Not on a [0, 1] scale: drawn divided by their largest value in the kind.
UNBOUNDED = {"unsupervised.mutual_info", "active_units"}
#: Each kind's name in the table and the figure; the authors' attacks are marked.
KIND_LABELS = {
    "redundancy": "redundancy (authors')",
    "global_mixing": "global mixing (authors')",
    "noised_copy": "noised copy (authors')",
    "synergy": "synergy (ours)",
    "rotation": "rotation (ours)",
}
STRENGTH_LABELS = {
    "redundancy": ("α", lambda s: f"{s:g}"),
    "global_mixing": ("α", lambda s: f"{s:g}"),
    "noised_copy": ("std", lambda s: "∞" if s == 0 else f"{1 / s:g}"),  # the strength is 1 / std
    "synergy": ("β", lambda s: f"{s:g}"),
    "rotation": (
        "θ",
        lambda s: {0: "0", 1: "π/16", 2: "π/8", 3: "3π/16", 4: "π/4"}.get(round(s / (math.pi / 16)), f"{s:.3f}"),
    ),
}


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed = {"kind": row["kind"]}
        for key, value in row.items():
            if key != "kind":
                parsed[key] = float(value) if value not in ("", "None") else None
        out.append(parsed)
    return out


def means(rows: list[dict]) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """Per kind, per step (strength order): the strength and the mean over seeds of every column."""
    out: dict[str, list] = {}
    for kind in ent.KINDS:
        steps = sorted({int(r["step"]) for r in rows if r["kind"] == kind})
        series = []
        for step in steps:
            sel = [r for r in rows if r["kind"] == kind and int(r["step"]) == step]
            cols = {k: float(np.mean([r[k] for r in sel])) for k in {**LINES, **EXTRA} if sel[0].get(k) is not None}
            series.append((sel[0]["strength"], cols))
        if series:
            out[kind] = series
    return out


def markdown(avg: dict) -> str:
    kinds = list(avg)
    head = ["metric"] + [
        f"{KIND_LABELS[kind]}: {STRENGTH_LABELS[kind][0]} = "
        + ", ".join(STRENGTH_LABELS[kind][1](s) for s, _ in avg[kind])
        for kind in kinds
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label in {**LINES, **EXTRA}.items():
        cells = [label.rstrip("*")]
        for kind in kinds:
            values = [cols.get(key) for _, cols in avg[kind]]
            fmt = "{:.0f}" if key == "active_units" else "{:.2f}"
            cells.append(" → ".join("–" if v is None else fmt.format(v) for v in values))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(avg: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(avg)
    cols = min(3, len(kinds))
    rows = -(-(len(kinds) + 1) // cols) if len(kinds) > cols else 1  # a free cell for the legend when it wraps
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.4 * rows), sharey=True, squeeze=False)
    axes = axes.ravel()
    for ax, kind in zip(axes, kinds):
        strengths = [s for s, _ in avg[kind]]
        for key, label in LINES.items():
            values = np.array([cols.get(key, np.nan) for _, cols in avg[kind]], dtype=float)
            if np.isnan(values).all():
                continue
            scale = np.nanmax(np.abs(values)) if key in UNBOUNDED else 1.0
            delta = (values - values[0]) / (scale if scale > 0 else 1.0)
            bold = key in ("unibound", "synergy.s_max")
            ax.plot(
                range(len(strengths)),
                delta,
                marker="o",
                ms=3,
                lw=2.6 if bold else 1.2,
                color=COLORS[key],
                label=label,
                zorder=3 if bold else 2,
            )
        symbol, fmt = STRENGTH_LABELS[kind]
        ax.set_xticks(range(len(strengths)), [fmt(s) for s in strengths])
        ax.set_xlabel(f"{KIND_LABELS[kind]}: {symbol}")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.grid(alpha=0.3)
        ax.set_title(KIND_LABELS[kind])
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[:: len(axes) // rows]:
        ax.set_ylabel("score − score of the perfect code\n(* ÷ its largest value in the kind)")
    handles, labels = axes[0].get_legend_handles_labels()
    if len(axes) > len(kinds):
        for ax in axes[len(kinds) :]:
            ax.axis("off")
        axes[len(kinds)].legend(handles, labels, loc="center", fontsize=9)
    else:
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--csv", type=Path, default=CSV)
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--from-csv", action="store_true", help="skip the run: table and figure from --csv")
    args = parser.parse_args()
    if not args.from_csv:
        start = time.perf_counter()
        rows = ent.run_protocol(seeds=args.seeds, log=lambda msg: print(msg, file=sys.stderr, flush=True))
        write_csv(rows, args.csv)
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        print(f"commit {git.stdout.strip()}, {time.perf_counter() - start:.0f} s, seeds {args.seeds}", file=sys.stderr)
    avg = means(read_csv(args.csv))
    figure(avg, args.figure)
    print(markdown(avg))


if __name__ == "__main__":
    main()
