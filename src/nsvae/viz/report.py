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

The reconstruction error of a run is the mean of the training log's
``recon`` (nats per image) over its last :data:`RECON_WINDOW` logged steps:
the last minibatches' reconstruction term, as in Kim & Mnih's Figure 4.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config.comparison import OBJECTIVE_SECTIONS
from ..errors import UserError

#: Logged steps averaged for a run's final reconstruction error.
RECON_WINDOW = 5
#: Metrics drawn against reconstruction error, in order of preference (the first two present are used).
SCATTER_METRICS = ("factor_vae_score", "mig", "dci", "beta_vae_score", "synergy")
#: The config sections that hold one method's hyper-parameters (named as the method; the plain VAE has none).
METHOD_SECTIONS = OBJECTIVE_SECTIONS  # the objectives' own config tables: one list, in nsvae.config.comparison
#: Column headers of the comparison tables where the bare metric name would not say enough.
COLUMN_LABELS = {"synergy": "synergy S_max", "synergy.wms": "synergy WMS"}
DEFAULT_SAMPLES = 20_000


@dataclasses.dataclass
class RunRecord:
    """What a report needs from one run directory (read once)."""

    path: Path
    config: Any
    status: dict[str, Any]
    log: list[dict[str, Any]]
    evaluation: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seed(self) -> int:
        return int(self.config.run.seed)

    def protocols(self) -> list[str]:
        return list((self.evaluation or {}).get("results", {}))

    def result(self, protocol: str | None) -> dict[str, Any] | None:
        """The evaluation under ``protocol`` (``None``: ``default`` if present, else the only one)."""
        results = (self.evaluation or {}).get("results", {})
        if protocol is None:
            protocol = "default" if "default" in results else next(iter(results), None)
        return results.get(protocol) if protocol else None

    def scores(self, protocol: str | None) -> dict[str, float]:
        from ..metrics.evaluate import headline_scores

        result = self.result(protocol)
        return headline_scores(result) if result else {}

    def table_scores(self, protocol: str | None) -> dict[str, float]:
        """:meth:`scores` with the fields shown beside them in tables (the synergy's WMS as ``synergy.wms``)."""
        from ..metrics.evaluate import table_scores

        result = self.result(protocol)
        return table_scores(result) if result else {}

    def final_reconstruction(self) -> float | None:
        values = [e["recon"] for e in self.log if isinstance(e.get("recon"), (int, float))]
        return float(np.mean(values[-RECON_WINDOW:])) if values else None

    def last_step(self) -> int:
        return int(self.log[-1]["step"]) if self.log else int(self.status.get("step", 0) or 0)


def _is_run_dir(path: Path) -> bool:
    return (path / "config.toml").is_file() and ((path / "status.json").is_file() or (path / "log.jsonl").is_file())


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories named in ``paths``, or found inside them (sweep directories), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path} does not exist; give a run directory or a directory of runs")
        if _is_run_dir(path):
            found.append(path)
            continue
        patterns = ("*/config.toml", "*/*/config.toml", "*/*/*/config.toml")
        inside = sorted({c.parent for pattern in patterns for c in path.glob(pattern)})
        inside = [p for p in inside if _is_run_dir(p)]
        if not inside:
            raise UserError(f"{path} is not a run directory and holds none (a run directory has config.toml)")
        found.extend(inside)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def read_run(path: Path) -> RunRecord:
    from ..evaluation import read_eval
    from ..train import load_run

    run = load_run(path)
    return RunRecord(path=Path(path), config=run.config, status=run.status(), log=run.log(), evaluation=read_eval(path))


# ---------------------------------------------------------------- settings


def _relevant(key: str, method: str) -> bool:
    """A key that labels a run of ``method``: part of the setting, and not another method's hyper-parameter."""
    from ..config.schema import defines_setting

    section = key.split(".")[0]
    return defines_setting(key) and (section == method or section not in METHOD_SECTIONS)


def _short(key: str) -> str:
    section, _, name = key.partition(".")
    return name if section in METHOD_SECTIONS or section == "run" else key


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting_labels(records: Sequence[RunRecord]) -> list[str]:
    """One label per run: the method and the relevant keys whose values differ between ``records``."""
    from ..config.schema import flatten

    flats = [flatten(r.config) for r in records]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if k != "method" and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    labels = []
    for record, flat in zip(records, flats):
        parts = [record.config.method]
        parts += [f"{_short(k)}={_format_value(flat[k])}" for k in varying if _relevant(k, record.config.method)]
        labels.append(" ".join(parts))
    return labels


def group_by_setting(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for record, label in zip(records, setting_labels(records)):
        groups.setdefault(label, []).append(record)
    return groups


# ---------------------------------------------------------------- HTML pieces

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
 padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
h3{font-size:1.05em}
.meta{color:#666;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.88em;margin-top:.3em}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.82em}
details summary{cursor:pointer;color:#335}
.muted{color:#888}.scroll{overflow-x:auto;max-width:100%}
.warning{background:#fff4e0;border:1px solid #e0a030;border-radius:4px;padding:.5em 1em;margin:1em 0}
.warning ul{margin:.3em 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(payload).decode("ascii")


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def picture_png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _figure(payload: bytes, mime: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{data_uri(payload, mime)}" alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table of already-escaped cells; columns in ``numeric`` are right-aligned."""
    numeric = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    # Wide tables (many metrics) scroll inside their own box instead of widening the page.
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _page(title: str, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"{body}"
        f'<p class="meta">Made by nsvae {_e(__version__)} on {stamp}.</p></body></html>\n'
    )


#: Per metric: the detail fields shown beside the headline score.
DETAILS = {
    "beta_vae_score": ("train_accuracy", "eval_accuracy"),
    "factor_vae_score": ("train_accuracy", "eval_accuracy", "num_active_dims"),
    "dci": ("disentanglement", "completeness", "informativeness_test"),
    "modularity_explicitness": ("modularity", "explicitness_test"),
    "synergy": ("s_max", "wms"),
    "unibound": ("unibound_upper", "redundancy_lower", "synergy_lower"),
    "active_units": ("num_active", "fraction_active"),
    "unsupervised": ("gaussian_total_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score"),
}


def _protocol_text(protocol: Any) -> str:
    if not isinstance(protocol, dict):
        return ""
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else _number(v)}" for k, v in protocol.items())


def metric_table(result: Mapping[str, Any]) -> str:
    """The metric table of one evaluation: score, details, protocol parameters, seconds."""
    seconds = result.get("seconds", {})
    rows = []
    for name, value in sorted(result.get("metrics", {}).items()):
        if not isinstance(value, dict):
            continue
        score = value.get("score")
        details = [f"{k}={_number(value[k])}" for k in DETAILS.get(name, ()) if k in value]
        proxy = value.get("proxy")
        if isinstance(proxy, dict) and "kl_worst" in proxy:
            details.append(f"proxy (held-out KL of the greedy worst set)={_number(proxy['kl_worst'])} nats")
        if "units" in value:
            details.append(f"units: {_e(value['units'])}")
        rows.append(
            [
                f"<b>{_e(name)}</b>",
                _number(score) if score is not None else '<span class="muted">—</span>',
                _e("; ".join(details)),
                f"<small>{_e(_protocol_text(value.get('protocol')))}</small>",
                _number(seconds.get(name), 3) if name in seconds else "",
            ]
        )
    return _table(["metric", "score", "details", "protocol", "seconds"], rows, numeric=(1, 4))


def synergy_table(result: Mapping[str, Any]) -> str:
    synergy = result.get("metrics", {}).get("synergy")
    if not isinstance(synergy, dict) or not isinstance(synergy.get("per_factor"), dict):
        return ""
    rows = []
    for factor, terms in synergy["per_factor"].items():
        if not isinstance(terms, dict):
            continue
        keys = ("s_max", "wms", "i_joint", "i_max", "sum_single", "entropy")
        rows.append([_e(factor)] + [_number(terms[k]) if k in terms else "" for k in keys])
    header = ["factor", "S_max / H(v)", "WMS / H(v)", "I(z; v)", "I_max", "Σ_j I(z_j; v)", "H(v)"]
    return _table(header, rows, numeric=range(1, len(header)))


def _interval(bounds: Any) -> str:
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
        return f"[{_number(bounds[0], 3)}, {_number(bounds[1], 3)}]"
    return ""


def unibound_table(result: Mapping[str, Any]) -> str:
    """Per factor, UniBound's bounds of the unique, redundant and synergistic information (``""`` without them).

    From the ``unibound`` result (:mod:`nsvae.metrics.pid_bounds`): UniBound's
    latent l*, its score (the lower bound of the unique information of z_l*),
    the intervals of U, R and S of (y; z_l*, z_\\l*), the largest lower bounds
    of R and S over every latent, all ÷ H(y); I(z; y) and H(y) in nats.
    """
    unibound = result.get("metrics", {}).get("unibound")
    if not isinstance(unibound, dict) or not isinstance(unibound.get("per_factor"), dict):
        return ""
    rows = []
    for factor, terms in unibound["per_factor"].items():
        if not isinstance(terms, dict):
            continue
        if "skipped" in terms:
            rows.append([_e(factor), f'<span class="muted">{_e(terms["skipped"])}</span>'] + [""] * 8)
            continue
        latent = terms.get("latent")
        rows.append(
            [
                _e(factor),
                f"z{latent}" if isinstance(latent, int) else "",
                _number(terms["unibound"]) if "unibound" in terms else "",
                _interval(terms.get("unique")),
                _interval(terms.get("redundancy")),
                _interval(terms.get("synergy")),
                *[_number(terms[k]) if k in terms else "" for k in ("max_redundancy_lower", "max_synergy_lower")],
                *[_number(terms[k]) if k in terms else "" for k in ("i_joint", "entropy")],
            ]
        )
    header = [
        "factor",
        "latent l*",
        "UniBound (U lower)",
        "U_l* ∈",
        "R ∈",
        "S ∈",
        "max_l R lower",
        "max_l S lower",
        "I(z; y)",
        "H(y)",
    ]
    return _table(header, rows, numeric=(2, 6, 7, 8, 9))


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
        f"<h1>{_e(record.name)}</h1>",
        f'<p class="meta">{_e(cfg.method)} on {_e(cfg.data.dataset)}, {_e(cfg.model.z_dim)} latents; '
        f"step {record.last_step()} of {cfg.run.steps}; state: {_e(state)}; seed {record.seed}; "
        f"directory {_e(record.path)}</p>",
        "<h2>Metrics</h2>",
    ]
    if not record.protocols():
        parts.append(f'<p class="muted">Not evaluated yet: run <code>nsvae evaluate {_e(record.path)}</code>.</p>')
    for protocol in record.protocols():
        result = record.result(protocol)
        parts.append(
            f"<h3>protocol “{_e(protocol)}”, checkpoint step {_e(result.get('step'))}, "
            f"seed {_e(result.get('seed'))}</h3>"
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
            parts.append(f'<p class="meta">versions: {_e(_protocol_text(versions))}</p>')
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
            parts.append(_figure(payload, mime, name, captions.get(name, name)))
            shown += 1
    if not shown:
        parts.append('<p class="muted">No figure yet: the run has no logged step or checkpoint.</p>')
    from ..config.schema import dumps

    parts.append("<h2>Config</h2><details><summary>the fully resolved config (TOML)</summary>")
    parts.append(f"<pre>{html.escape(dumps(cfg), quote=False)}</pre></details>")
    return _page(f"nsvae report: {record.name}", "".join(parts))


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
        f'<p class="meta">{len(groups)} settings; scores under protocol “{_e(protocol or "default")}”; '
        f"reconstruction: mean training reconstruction term over the last {RECON_WINDOW} logged steps "
        "(nats per image).</p>",
        mismatch_warning_html(records, labels),
        "<h2>Settings: mean ± std over seeds</h2>",
    ]
    rows = []
    table = score_table(records, protocol, beside=True)
    for label, members in groups.items():
        recon = [value for r in members if (value := r.final_reconstruction()) is not None]
        row = [_e(label), str(len(members)), _mean_std_text(recon)]
        row += [_mean_std_text(table[label].get(metric, [])) for metric in metrics]
        rows.append(row)
    parts.append(_table(["setting", "runs", "reconstruction", *headers], rows, numeric=range(1, 3 + len(metrics))))
    parts.append("<h2>Runs</h2>")
    rows = []
    for record, label in zip(records, labels):
        scores = record.table_scores(protocol)
        recon = record.final_reconstruction()
        rows.append(
            [
                _e(record.name),
                _e(label),
                str(record.seed),
                f"{record.last_step()}/{record.config.run.steps}",
                _e(record.status.get("state", "unknown")),
                _number(recon) if recon is not None else "",
            ]
            + [_number(scores[m]) if m in scores else '<span class="muted">—</span>' for m in metrics]
        )
    header = ["run", "setting", "seed", "step", "state", "reconstruction", *headers]
    parts.append(_table(header, rows, numeric=[2, 3, *range(5, len(header))]))
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
            parts.append(_figure(payload, "image/png", name, caption))
    shown = {label: payload for label, payload in traversals.items() if payload}
    if shown:
        parts.append("<h2>Traversals, one run per setting</h2>")
        for label, payload in shown.items():
            run_name = groups[label][0].name
            parts.append(_figure(payload, "image/png", f"traversal {label}", f"{label}: {run_name}, latest checkpoint"))
    return _page(f"nsvae comparison of {len(records)} runs", "".join(parts))


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
    items = "".join(f"<li><code>{_e(line)}</code></li>" for line in lines[1:])
    head = lines[0].removeprefix("warning: ")
    return f'<div class="warning" role="alert"><b>Warning:</b> {_e(head)}<ul>{items}</ul></div>'


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
