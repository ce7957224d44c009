"""The HTML pieces of the reports (:mod:`nsvae.viz.report`): escaping, numbers, embedded figures, tables, the page
around them, and the tables of one run's evaluation (metrics with their protocols, the synergy per factor,
UniBound's bounds per factor). Every cell that shows user-provided text goes through :func:`escape`."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import __version__

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


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(value)
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


def figure_html(payload: bytes, mime: str, alt: str, caption: str) -> str:
    image = f'<img src="{data_uri(payload, mime)}" alt="{escape(alt)}">'
    return f"<figure>{image}<figcaption>{escape(caption)}</figcaption></figure>"


def table_html(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table of already-escaped cells; columns in ``numeric`` are right-aligned."""
    numeric = set(numeric)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    # Wide tables (many metrics) scroll inside their own box instead of widening the page.
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def page_html(title: str, body: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"{body}"
        f'<p class="meta">Made by nsvae {escape(__version__)} on {stamp}.</p></body></html>\n'
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


def protocol_text(protocol: Any) -> str:
    if not isinstance(protocol, dict):
        return ""
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else number(v)}" for k, v in protocol.items())


def metric_table(result: Mapping[str, Any]) -> str:
    """The metric table of one evaluation: score, details, protocol parameters, seconds."""
    seconds = result.get("seconds", {})
    rows = []
    for name, value in sorted(result.get("metrics", {}).items()):
        if not isinstance(value, dict):
            continue
        score = value.get("score")
        details = [f"{k}={number(value[k])}" for k in DETAILS.get(name, ()) if k in value]
        proxy = value.get("proxy")
        if isinstance(proxy, dict) and "kl_worst" in proxy:
            details.append(f"proxy (held-out KL of the greedy worst set)={number(proxy['kl_worst'])} nats")
        if "units" in value:
            details.append(f"units: {escape(value['units'])}")
        rows.append(
            [
                f"<b>{escape(name)}</b>",
                number(score) if score is not None else '<span class="muted">—</span>',
                escape("; ".join(details)),
                f"<small>{escape(protocol_text(value.get('protocol')))}</small>",
                number(seconds.get(name), 3) if name in seconds else "",
            ]
        )
    return table_html(["metric", "score", "details", "protocol", "seconds"], rows, numeric=(1, 4))


def synergy_table(result: Mapping[str, Any]) -> str:
    synergy = result.get("metrics", {}).get("synergy")
    if not isinstance(synergy, dict) or not isinstance(synergy.get("per_factor"), dict):
        return ""
    rows = []
    for factor, terms in synergy["per_factor"].items():
        if not isinstance(terms, dict):
            continue
        keys = ("s_max", "wms", "i_joint", "i_max", "sum_single", "entropy")
        rows.append([escape(factor)] + [number(terms[k]) if k in terms else "" for k in keys])
    header = ["factor", "S_max / H(v)", "WMS / H(v)", "I(z; v)", "I_max", "Σ_j I(z_j; v)", "H(v)"]
    return table_html(header, rows, numeric=range(1, len(header)))


def _interval(bounds: Any) -> str:
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
        return f"[{number(bounds[0], 3)}, {number(bounds[1], 3)}]"
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
            rows.append([escape(factor), f'<span class="muted">{escape(terms["skipped"])}</span>'] + [""] * 8)
            continue
        latent = terms.get("latent")
        rows.append(
            [
                escape(factor),
                f"z{latent}" if isinstance(latent, int) else "",
                number(terms["unibound"]) if "unibound" in terms else "",
                _interval(terms.get("unique")),
                _interval(terms.get("redundancy")),
                _interval(terms.get("synergy")),
                *[number(terms[k]) if k in terms else "" for k in ("max_redundancy_lower", "max_synergy_lower")],
                *[number(terms[k]) if k in terms else "" for k in ("i_joint", "entropy")],
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
    return table_html(header, rows, numeric=(2, 6, 7, 8, 9))
