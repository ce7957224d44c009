"""HTML reports: one self-contained page per run, or a comparison page for several runs.

A report is a single ``.html`` file with every figure embedded as a ``data:``
URI and its style inline, so it can be mailed, archived or opened offline;
it runs no script. :func:`find_runs` accepts run directories and directories
that contain runs (a sweep directory: ``SWEEP/runs/*``), :func:`run_report`
writes the page of one run (config, metric table with each protocol, the
synergy per factor, UniBound's unique / redundant / synergistic bounds per
factor, training curves, traversals, mean activations) and
:func:`comparison_report` the page of several (a table per run and per
setting with mean ± std over seeds, metric bars, a score against
reconstruction error, the synergy proxy over training, one traversal per
setting).

A *setting* is a run's config without its seeds and incidental keys
(:func:`nsvae.config.schema.defines_setting`, as in the sweep results
table); runs that differ only there are seeds of one setting. Settings are
labelled by the method and the keys that differ between the compared runs,
e.g. ``nonsyn alpha=5``. When the compared runs differ outside their
objectives' own tables (the network, the optimiser, the steps, ...:
:func:`nsvae.config.comparison.differences`), the comparison page opens
with a warning naming those keys and the settings with each value.

In the comparison tables the synergy score (S_max) is followed by its whole
minus sum (WMS) (:data:`nsvae.metrics.evaluate.BESIDE_SCORE`).

The runs and their settings are :mod:`nsvae.viz.run_records`'s; the HTML pieces
:mod:`nsvae.viz.report_html`'s.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import UserError
from .report_html import (
    escape,
    figure_html,
    figure_png,
    metric_table,
    number,
    page_html,
    picture_png,
    protocol_text,
    synergy_table,
    table_html,
    unibound_table,
)
from .run_records import RECON_WINDOW, RunRecord, find_runs, group_by_setting, read_run, setting_labels

#: Metrics drawn against reconstruction error, in order of preference (the first two present are used).
SCATTER_METRICS = ("factor_vae_score", "mig", "dci", "beta_vae_score", "synergy")
#: Column headers of the comparison tables where the bare metric name would not say enough.
COLUMN_LABELS = {"synergy": "synergy S_max", "synergy.wms": "synergy WMS"}
DEFAULT_SAMPLES = 20_000


# ---------------------------------------------------------------- figures


def curves_png(record: RunRecord) -> bytes | None:
    from .curves import training_curves

    return figure_png(training_curves(record.log, title=record.name)) if record.log else None


def traversal_png(record: RunRecord) -> bytes | None:
    """The default traversal figure of the latest checkpoint (``None`` before the first checkpoint)."""
    from ..train import load_run
    from .traversals import run_traversal

    run = load_run(record.path)
    if not run.checkpoints():
        return None
    return picture_png(run_traversal(run))


def traversal_gifs(record: RunRecord) -> dict[str, bytes | None]:
    """The GIFs over traversal values (latest checkpoint) and over training (one frame per kept checkpoint)."""
    from ..train import load_run
    from .traversal_gifs import run_traversal_gif, training_gif

    run = load_run(record.path)
    if not run.checkpoints():
        return {}
    over_values, over_training = io.BytesIO(), io.BytesIO()
    run_traversal_gif(run, over_values)
    training_gif(run, over_training)
    return {"traversal_gif": over_values.getvalue(), "training_gif": over_training.getvalue()}


def mean_activation_png(record: RunRecord, samples: int, seed: int) -> bytes | None:
    """The mean-activation figure from ``samples`` random images (``None`` without factors or checkpoints)."""
    from ..train import load_run
    from .mean_activation import run_mean_activation

    run = load_run(record.path)
    if samples <= 0 or not run.checkpoints():
        return None
    try:
        fig = run_mean_activation(run, None, samples, seed)
    except UserError:  # an image dataset without ground-truth factors
        return None
    except ValueError:  # e.g. no active latent: the page says so instead
        return None
    return figure_png(fig, dpi=150)


# ---------------------------------------------------------------- pages


def run_page(record: RunRecord, figures: Mapping[str, bytes | None]) -> str:
    """The HTML of one run's report (``figures``: name -> PNG bytes or ``None``)."""
    cfg = record.config
    state = record.status.get("state", "unknown")
    parts = [
        f"<h1>{escape(record.name)}</h1>",
        f'<p class="meta">{escape(cfg.method)} on {escape(cfg.data.dataset)}, {escape(cfg.model.z_dim)} latents; '
        f"step {record.last_step()} of {cfg.run.steps}; state: {escape(state)}; seed {record.seed}; "
        f"directory {escape(record.path)}</p>",
        "<h2>Metrics</h2>",
    ]
    if not record.protocols():
        parts.append(f'<p class="muted">Not evaluated yet: run <code>nsvae evaluate {escape(record.path)}</code>.</p>')
    for protocol in record.protocols():
        result = record.result(protocol)
        parts.append(
            f"<h3>protocol “{escape(protocol)}”, checkpoint step {escape(result.get('step'))}, "
            f"seed {escape(result.get('seed'))}</h3>"
        )
        parts.append(metric_table(result))
        synergy = synergy_table(result)
        if synergy:
            parts.append("<h3>Synergy among the latents about each factor</h3>" + synergy)
        pid = unibound_table(result)
        if pid:
            parts.append(
                "<h3>Unique, redundant and synergistic information per factor (UniBound, Tokui &amp; Sato 2022)</h3>"
                '<p class="meta">The partial information decomposition of what one latent z_l* and all the others '
                "z_\\l* know about the factor, at UniBound's latent l* (the largest lower bound of unique "
                "information): each atom's interval ÷ H(y); the largest lower bounds of redundancy and synergy over "
                "every latent; I(z; y) and H(y) in nats.</p>" + pid
            )
        versions = result.get("versions")
        if versions:
            parts.append(f'<p class="meta">versions: {escape(protocol_text(versions))}</p>')
    captions = {
        "curves": "Training curves from log.jsonl: reconstruction, total KL, KL per latent, the synergy proxy "
        "(KL of the greedy worst set) and, for the Non-Syn VAE, how often each latent was selected.",
        "traversal": "Latent traversals of the latest checkpoint: each image's own mean code moved from -3 to 3 "
        "along one latent per row; rows sorted by the latent's mean KL (nats), inactive latents dimmed.",
        "traversal_gif": "The same traversals as an animation over the values (all latents in each frame).",
        "training_gif": "The traversals at each kept checkpoint: how the latents came to be over training.",
        "mean_activation": "Mean code of each active latent against the ground-truth factors.",
    }
    parts.append("<h2>Figures</h2>")
    shown = 0
    for name, payload in figures.items():
        if payload:
            mime = "image/gif" if name.endswith("_gif") else "image/png"
            parts.append(figure_html(payload, mime, name, captions.get(name, name)))
            shown += 1
    if not shown:
        parts.append('<p class="muted">No figure yet: the run has no logged step or checkpoint.</p>')
    from ..config.schema import dumps

    parts.append("<h2>Config</h2><details><summary>the fully resolved config (TOML)</summary>")
    parts.append(f"<pre>{html.escape(dumps(cfg), quote=False)}</pre></details>")
    return page_html(f"nsvae report: {record.name}", "".join(parts))


def comparison_page(
    records: Sequence[RunRecord],
    protocol: str | None,
    figures: Mapping[str, bytes | None],
    traversals: Mapping[str, bytes | None],
) -> str:
    """The HTML comparing ``records`` (figures: name -> PNG; traversals: setting -> PNG)."""
    labels = setting_labels(records)
    groups = group_by_setting(records)
    metrics = list(dict.fromkeys(m for r in records for m in r.table_scores(protocol)))
    headers = [COLUMN_LABELS.get(m, m) for m in metrics]
    parts = [
        f"<h1>Comparison of {len(records)} runs</h1>",
        f'<p class="meta">{len(groups)} settings; scores under protocol “{escape(protocol or "default")}”; '
        f"reconstruction: mean training reconstruction term over the last {RECON_WINDOW} logged steps "
        "(nats per image).</p>",
        mismatch_warning_html(records, labels),
        "<h2>Settings: mean ± std over seeds</h2>",
    ]
    rows = []
    table = score_table(records, protocol, beside=True)
    for label, members in groups.items():
        recon = [value for r in members if (value := r.final_reconstruction()) is not None]
        row = [escape(label), str(len(members)), _mean_std_text(recon)]
        row += [_mean_std_text(table[label].get(metric, [])) for metric in metrics]
        rows.append(row)
    parts.append(table_html(["setting", "runs", "reconstruction", *headers], rows, numeric=range(1, 3 + len(metrics))))
    parts.append("<h2>Runs</h2>")
    rows = []
    for record, label in zip(records, labels):
        scores = record.table_scores(protocol)
        recon = record.final_reconstruction()
        rows.append(
            [
                escape(record.name),
                escape(label),
                str(record.seed),
                f"{record.last_step()}/{record.config.run.steps}",
                escape(record.status.get("state", "unknown")),
                number(recon) if recon is not None else "",
            ]
            + [number(scores[m]) if m in scores else '<span class="muted">—</span>' for m in metrics]
        )
    header = ["run", "setting", "seed", "step", "state", "reconstruction", *headers]
    parts.append(table_html(header, rows, numeric=[2, 3, *range(5, len(header))]))
    captions = {
        "bars": "Each metric per setting: bar at the mean over seeds, error bar ±1 std (ddof=1), dots the seeds.",
        "proxy": "The synergy proxy (KL of the greedy worst set, nats) over training: mean over seeds, min–max band.",
    }
    parts.append("<h2>Figures</h2>")
    for name, payload in figures.items():
        if payload:
            caption = captions.get(name) or (
                f"{name.removeprefix('scatter_')} against the final reconstruction error, one point per run "
                "(Kim & Mnih 2018, Fig. 4: top left is better)."
            )
            parts.append(figure_html(payload, "image/png", name, caption))
    shown = {label: payload for label, payload in traversals.items() if payload}
    if shown:
        parts.append("<h2>Traversals, one run per setting</h2>")
        for label, payload in shown.items():
            run_name = groups[label][0].name
            parts.append(
                figure_html(payload, "image/png", f"traversal {label}", f"{label}: {run_name}, latest checkpoint")
            )
    return page_html(f"nsvae comparison of {len(records)} runs", "".join(parts))


def _mean_std_text(values: Sequence[float]) -> str:
    if not values:
        return '<span class="muted">—</span>'
    from ..stats import mean_sd

    mean, std = mean_sd(values)
    return f"{mean:.4g} ± {std:.2g}" if len(values) > 1 else f"{mean:.4g}"


def mismatch_lines(records: Sequence[RunRecord], labels: Sequence[str] | None = None) -> list[str]:
    """The warning (:func:`nsvae.config.comparison.warning_lines`) when ``records`` differ outside their
    objectives' own tables, each value named by the settings that have it; empty when they do not."""
    from ..config.comparison import differences, warning_lines

    labels = setting_labels(records) if labels is None else labels
    return warning_lines(differences([(label, r.config) for r, label in zip(records, labels)]), what="settings")


def mismatch_warning_html(records: Sequence[RunRecord], labels: Sequence[str] | None = None) -> str:
    """:func:`mismatch_lines` as the page's warning box ("" when the runs differ only in their objectives)."""
    lines = mismatch_lines(records, labels)
    if not lines:
        return ""
    items = "".join(f"<li><code>{escape(line)}</code></li>" for line in lines[1:])
    head = lines[0].removeprefix("warning: ")
    return f'<div class="warning" role="alert"><b>Warning:</b> {escape(head)}<ul>{items}</ul></div>'


def score_table(
    records: Sequence[RunRecord], protocol: str | None, beside: bool = False
) -> dict[str, dict[str, list[float]]]:
    """setting -> metric -> the scores of its runs (``beside``: also the fields tables show beside a score,
    e.g. ``synergy.wms``)."""
    table: dict[str, dict[str, list[float]]] = {}
    for label, members in group_by_setting(records).items():
        table[label] = {}
        for record in members:
            scores = record.table_scores(protocol) if beside else record.scores(protocol)
            for metric, score in scores.items():
                table[label].setdefault(metric, []).append(score)
    return table


def scatter_metrics(records: Sequence[RunRecord], protocol: str | None) -> list[str]:
    """The scores drawn against reconstruction error, in :data:`SCATTER_METRICS` order, that some run has."""
    return [m for m in SCATTER_METRICS if any(m in r.scores(protocol) for r in records)]


def bars_figure(records: Sequence[RunRecord], protocol: str | None):
    from .compare import metric_bars

    return metric_bars(score_table(records, protocol))


def scatter_figure(records: Sequence[RunRecord], protocol: str | None, metric: str):
    from .compare import score_vs_reconstruction

    points = [
        {"label": label, "recon": r.final_reconstruction(), "score": r.scores(protocol)[metric]}
        for r, label in zip(records, setting_labels(records))
        if metric in r.scores(protocol) and r.final_reconstruction() is not None
    ]
    return score_vs_reconstruction(points, metric, "reconstruction error (nats / image)")


def proxy_figure(records: Sequence[RunRecord]):
    from .compare import proxy_over_training

    logs = {label: [r.log for r in members if r.log] for label, members in group_by_setting(records).items()}
    return proxy_over_training({label: runs for label, runs in logs.items() if runs})


def comparison_figures(records: Sequence[RunRecord], protocol: str | None) -> dict[str, bytes | None]:
    """The comparison page's figures as PNG bytes: bars, up to two scatters, the proxy (each where data allow)."""
    figures: dict[str, bytes | None] = {}
    if any(score_table(records, protocol).values()):
        figures["bars"] = figure_png(bars_figure(records, protocol))
    for metric in scatter_metrics(records, protocol)[:2]:
        if any(metric in r.scores(protocol) and r.final_reconstruction() is not None for r in records):
            figures[f"scatter_{metric}"] = figure_png(scatter_figure(records, protocol, metric))
    if any("synergy_proxy" in entry for r in records for entry in r.log):
        figures["proxy"] = figure_png(proxy_figure(records))
    return figures


def write_report(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    protocol: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    traversals: bool = True,
    progress: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of the runs in ``paths`` (a single run: its page; several: the comparison).

    ``output`` defaults to ``report.html`` inside the run (or the one directory
    given). ``samples`` images are encoded for a run's mean-activation figure
    (0 leaves it out). ``warn`` receives the comparison's warning as text
    (:func:`nsvae.config.comparison.warning_text`) when the runs differ
    outside their objectives' own tables (the page shows it too). Returns the
    path written.
    """
    from ..atomic import atomic_write

    say = progress or (lambda message: None)
    if not paths:
        raise UserError("give at least one run directory")
    if samples < 0:
        raise UserError("--samples must be >= 0")
    run_dirs = find_runs(paths)
    if output is None:
        if len(paths) != 1:
            raise UserError("several inputs: say where to write the report with -o FILE.html")
        output = Path(paths[0]) / "report.html"
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"-o must name a .html file, got {output}")
    records = []
    for path in run_dirs:
        say(f"reading {path}")
        records.append(read_run(path))
    if protocol is not None and not any(protocol in r.protocols() for r in records):
        known = sorted({p for r in records for p in r.protocols()}) or ["none: evaluate the runs first"]
        raise UserError(f"no run was evaluated under protocol {protocol!r}; available: {', '.join(known)}")
    if len(records) == 1:
        record = records[0]
        say("drawing the training curves")
        figures = {"curves": curves_png(record)}
        if traversals:
            say("drawing the traversals and their GIFs")
            figures["traversal"] = traversal_png(record)
            figures.update(traversal_gifs(record))
        if samples:
            say(f"encoding {samples} images for the mean-activation figure")
            figures["mean_activation"] = mean_activation_png(record, samples, seed)
        page = run_page(record, figures)
    else:
        mismatch = mismatch_lines(records) if warn else []
        if mismatch:
            from ..config.comparison import warning_text

            warn(warning_text(mismatch))
        say(f"drawing the comparison figures of {len(records)} runs")
        figures = comparison_figures(records, protocol)
        pictures: dict[str, bytes | None] = {}
        if traversals:
            for label, members in group_by_setting(records).items():
                say(f"drawing the traversal of {label}")
                pictures[label] = traversal_png(members[0])
        page = comparison_page(records, protocol, figures, pictures)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, lambda handle: handle.write(page.encode("utf-8")))
    return output
