"""HTML reports and comparison figures: settings, numbers, embedded figures, errors."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from nsvae.cli import main
from nsvae.config import Config, apply_overrides
from nsvae.errors import UserError
from nsvae.stats import mean_sd
from nsvae.viz.compare import metric_bars, proxy_over_training, score_vs_reconstruction
from nsvae.viz.report import write_report
from nsvae.viz.run_records import RunRecord, find_runs, group_by_setting, setting_labels
from nsvae.viz.traversals import default_figure_size

from .conftest import REPORT_RUNS


def record(path="r", **keys) -> RunRecord:
    from pathlib import Path

    return RunRecord(Path(path), apply_overrides(Config(), keys), {}, [], None)


def embedded_images(page: str) -> list[Image.Image]:
    """Every data-URI image of the page, decoded (fails if one is not a valid picture)."""
    pictures = []
    for mime, payload in re.findall(r'<img src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', page):
        picture = Image.open(io.BytesIO(base64.b64decode(payload)))
        picture.load()
        assert picture.format.lower() == mime.split("/")[1]
        pictures.append(picture)
    return pictures


# ---------------------------------------------------------------- settings


def test_setting_labels_name_the_method_and_the_keys_that_differ():
    records = [
        record(method="nonsyn", **{"nonsyn.alpha": 5.0, "run.seed": 0}),
        record(method="nonsyn", **{"nonsyn.alpha": 5.0, "run.seed": 1, "run.name": "other"}),
        record(method="nonsyn", **{"nonsyn.alpha": 2.0, "run.seed": 0}),
        record(method="vae", **{"run.seed": 0}),
        record(method="beta_vae", **{"run.seed": 3, "data.seed": 9}),
    ]
    # beta_vae.beta does not vary, nonsyn.alpha does but only matters to the Non-Syn runs; seeds and names never count
    assert setting_labels(records) == ["nonsyn alpha=5", "nonsyn alpha=5", "nonsyn alpha=2", "vae", "beta_vae"]
    groups = group_by_setting(records)
    assert [len(v) for v in groups.values()] == [2, 1, 1, 1]


def test_shared_keys_that_differ_label_every_run():
    records = [record(method="vae", **{"model.z_dim": 6}), record(method="vae", **{"model.z_dim": 10})]
    assert setting_labels(records) == ["vae model.z_dim=6", "vae model.z_dim=10"]


def test_final_reconstruction_is_the_mean_of_the_last_five_logged_steps():
    rec = record()
    rec.log = [{"step": s, "recon": float(s)} for s in range(1, 9)] + [{"step": 9}]
    assert rec.final_reconstruction() == pytest.approx(np.mean([4, 5, 6, 7, 8]))
    assert record().final_reconstruction() is None


# ---------------------------------------------------------------- comparison figures


def test_mean_sd_uses_the_sample_standard_deviation_and_is_undefined_for_one_value():
    # one mean ± sd for the whole package (issue 26, point 5): the sweep table, the study table and the report agree
    assert mean_sd([0.1, 0.3]) == pytest.approx((0.2, np.std([0.1, 0.3], ddof=1)))
    mean, sd = mean_sd([4.0])
    assert mean == 4.0 and math.isnan(sd)
    from nsvae.experiments import study_analysis, sweep_results

    assert sweep_results.mean_sd is mean_sd and study_analysis.mean_sd is mean_sd
    table = study_analysis.final_table([{"method": "a", "seed": 0, "step": 1, "x": 4.0}])
    assert table["a"]["x"][0] == 4.0 and math.isnan(table["a"]["x"][1]) and table["a"]["x"][2] == 1
    with pytest.raises(ValueError):
        mean_sd([])


def test_metric_bars_are_the_means_with_error_bars_only_over_several_seeds():
    fig = metric_bars({"a": {"mig": [0.1, 0.3], "dci": [1.0]}, "b": {"mig": [0.5]}})
    mig, dci = fig.axes[0], fig.axes[1]
    assert [p.get_height() for p in mig.patches] == pytest.approx([0.2, 0.5])
    assert [p.get_height() for p in dci.patches] == pytest.approx([1.0])
    assert len(mig.containers) == 3  # two bars and one error bar (setting a only)
    from matplotlib.collections import PathCollection

    seeds = np.concatenate([c.get_offsets()[:, 1] for c in mig.collections if isinstance(c, PathCollection)])
    assert sorted(seeds.tolist()) == pytest.approx([0.1, 0.3, 0.5])
    assert [t.get_text() for t in mig.get_xticklabels()] == ["a", "b"]


def test_metric_bars_without_values_is_an_error():
    with pytest.raises(ValueError, match="evaluate"):
        metric_bars({"a": {}})


def test_score_against_reconstruction_draws_every_run_once_per_setting_colour():
    points = [
        {"label": "x", "recon": 10.0, "score": 0.5},
        {"label": "x", "recon": 12.0, "score": 0.7},
        {"label": "y", "recon": 30.0, "score": 0.1},
    ]
    fig = score_vs_reconstruction(points, "mig")
    ax = fig.axes[0]
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[10.0, 0.5], [12.0, 0.7]], [[30.0, 0.1]]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x", "y"]
    with pytest.raises(ValueError):
        score_vs_reconstruction([], "mig")


def test_proxy_over_training_is_the_mean_over_seeds_with_a_min_max_band():
    seed0 = [{"step": s, "synergy_proxy": v} for s, v in [(10, 1.0), (20, 2.0), (30, 3.0)]]
    seed1 = [{"step": s, "synergy_proxy": v} for s, v in [(10, 3.0), (20, 4.0)]]
    single = [{"step": 10, "synergy_proxy": 7.0}]
    fig = proxy_over_training({"a": [seed0, seed1], "b": [single]})
    ax = fig.axes[0]
    mean, other = ax.lines
    assert mean.get_xdata().tolist() == [10, 20] and mean.get_ydata().tolist() == [2.0, 3.0]
    assert other.get_ydata().tolist() == [7.0]
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == 1.0 and band[:, 1].max() == 4.0
    with pytest.raises(ValueError, match="synergy_proxy"):
        proxy_over_training({"a": [[{"step": 1, "recon": 2.0}]]})


# ---------------------------------------------------------------- finding runs


def test_find_runs_takes_run_directories_and_directories_of_runs(report_sweep):
    runs = find_runs([report_sweep])
    assert [p.name for p in runs] == sorted(REPORT_RUNS)
    one = report_sweep / "runs" / "vae-s0"
    assert find_runs([one, one]) == [one.resolve()]
    with pytest.raises(UserError, match="does not exist"):
        find_runs([report_sweep / "nope"])
    with pytest.raises(UserError, match="holds none"):
        find_runs([one / "checkpoints"])


# ---------------------------------------------------------------- pages


def test_comparison_page_has_mean_and_std_over_seeds_and_every_figure(report_sweep, tmp_path):
    out = write_report([report_sweep], tmp_path / "cmp.html")
    page = out.read_text(encoding="utf-8")
    assert "Comparison of 3 runs" in page and "2 settings" in page
    # Non-Syn: mig 0.1 and 0.3 -> 0.2 ± 0.14; factor_vae_score 0.5, 0.7 -> 0.6 ± 0.14; the VAE: one run, no ±
    row = re.search(r"<tr><td>nonsyn</td><td class=\"num\">2</td>.*?</tr>", page).group(0)
    assert "0.2 ± 0.14" in row and "0.6 ± 0.14" in row
    vae_row = re.search(r"<tr><td>vae</td><td class=\"num\">1</td>.*?</tr>", page).group(0)
    assert "0.05" in vae_row and "±" not in vae_row
    for name in REPORT_RUNS:
        assert f"<td>{name}</td>" in page
    pictures = embedded_images(page)
    # metric bars, two score-vs-reconstruction scatters (factor_vae_score, mig), the proxy, two traversals
    assert len(pictures) == 6
    assert "factor_vae_score against the final reconstruction error" in page
    assert "<script" not in page


def test_single_run_page_shows_metrics_protocol_synergy_config_and_figures(report_sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_sweep / "runs" / "nonsyn-s0", run)
    assert main(["report", str(run), "--samples", "400", "-q"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "protocol “default”" in page and "num_train=10" in page
    assert "<b>mig</b>" in page and "<b>synergy</b>" in page
    assert "held-out KL of the greedy worst set)=0.25" in page
    assert "Synergy among the latents about each factor" in page and "<td>shape</td>" in page
    assert 'method = "nonsyn"' in page  # the resolved config
    pictures = embedded_images(page)
    assert len(pictures) == 5  # curves, traversal, its GIF over values, the GIF over training, mean activation
    traversal, over_values, over_training = pictures[1:4]
    height, width = default_figure_size(n_images=3, n_values=7, n_rows=3)
    assert traversal.size == (width, height)
    assert over_values.format == "GIF" and over_values.n_frames == 2 * 13 - 2  # ping-pong over 13 values
    assert over_training.n_frames == 1  # one kept checkpoint (step 4)
    assert main(["report", str(run), "--samples", "0", "--no-traversals", "-q", "-o", str(tmp_path / "b.html")]) == 0
    assert len(embedded_images((tmp_path / "b.html").read_text(encoding="utf-8"))) == 1


def test_an_unevaluated_run_says_how_to_evaluate_it(report_sweep, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(report_sweep / "runs" / "vae-s0", run)
    (run / "eval.json").unlink()
    write_report([run], samples=0, traversals=False)
    assert f"nsvae evaluate {run}" in (run / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["SWEEP", "-o", "OUT/report.png"], "must name a .html file"),
        (["SWEEP/runs/vae-s0", "SWEEP/runs/nonsyn-s0"], "-o FILE.html"),
        (["SWEEP", "-o", "OUT/x.html", "--protocol", "paper"], "available: default"),
        (["SWEEP/missing"], "does not exist"),
        (["SWEEP", "--samples", "-1"], "--samples"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(report_sweep, tmp_path, capsys, argv, message):
    argv = [a.replace("SWEEP", str(report_sweep)).replace("OUT", str(tmp_path)) for a in argv]
    assert main(["report", *argv, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.png"))


def test_a_damaged_eval_json_is_named(report_sweep, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(report_sweep / "runs" / "vae-s0", run)
    (run / "eval.json").write_text("{", encoding="utf-8")
    assert main(["report", str(run), "-q"]) == 2
    assert "eval.json is not valid JSON" in capsys.readouterr().err


def test_fake_evaluation_matches_what_headline_scores_reads():
    from nsvae.metrics.evaluate import headline_scores

    from .conftest import fake_evaluation

    result = fake_evaluation({"mig": 0.25})["results"]["default"]
    assert headline_scores(json.loads(json.dumps(result))) == {"mig": 0.25}


# ---------------------------------------------------------------- nsvae plot: the comparison figures


@pytest.mark.parametrize("figure, extra", [("bars", []), ("scatter", ["--metric", "mig"]), ("proxy", [])])
def test_plot_comparison_figures_from_a_sweep_directory(report_sweep, tmp_path, figure, extra):
    out = tmp_path / f"{figure}.png"
    assert main(["plot", figure, str(report_sweep), "-o", str(out), "--dpi", "50", *extra]) == 0
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 150 and picture.height > 100


@pytest.mark.parametrize(
    "argv, message",
    [
        (["scatter", "SWEEP", "--metric", "dci"], "evaluated: factor_vae_score, mig, synergy"),
        (["bars", "SWEEP", "--protocol", "paper"], "available: default"),
        (["bars", "SWEEP", "--step", "4"], "leave out --step"),
        (["curves", "SWEEP/runs/vae-s0", "SWEEP/runs/nonsyn-s0"], "give one run directory"),
        (["proxy", "SWEEP", "--metric", "mig"], "--metric applies to the scatter and study-traversals figures only"),
    ],
)
def test_plot_comparison_errors(report_sweep, tmp_path, capsys, argv, message):
    argv = [a.replace("SWEEP", str(report_sweep)) for a in argv]
    assert main(["plot", argv[0], *argv[1:], "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- comparing like with like


def _fake_runs(folder, network: dict[str, dict]) -> None:
    """Finished, evaluated run directories without training: Non-Syn seeds 0 and 1, the VAE seed 0, each
    with ``network[method]`` as config overrides; synergy S_max and WMS per run as in ``SYNERGY``."""
    from nsvae.train.run import Run

    from .conftest import fake_evaluation, tiny_report_config

    for name, (method, seed, s_max, wms) in SYNERGY.items():
        run = Run(folder / name)
        run.write_config(apply_overrides(tiny_report_config(method, seed, name), network[method]))
        run.set_status("finished", step=4)
        evaluation = fake_evaluation({"mig": 0.1, "synergy": s_max})
        evaluation["results"]["default"]["metrics"]["synergy"]["wms"] = wms
        (run.path / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")


#: run -> (method, seed, S_max, WMS)
SYNERGY = {"nonsyn-s0": ("nonsyn", 0, 0.3, 0.1), "nonsyn-s1": ("nonsyn", 1, 0.5, 0.2), "vae-s0": ("vae", 0, 0.2, -0.3)}


def test_the_report_knows_the_objective_tables():
    from nsvae.config.comparison import OBJECTIVE_SECTIONS
    from nsvae.viz.run_records import METHOD_SECTIONS

    assert METHOD_SECTIONS is OBJECTIVE_SECTIONS  # one list (issue 26, point 5), not a copy held equal


def test_a_comparison_of_runs_on_different_networks_warns_on_the_page_and_on_stderr(tmp_path, capsys):
    paper = {"model.fc_relus": "paper", "model.convtranspose_init": "pytorch0.4"}
    _fake_runs(tmp_path / "runs", {"nonsyn": paper, "vae": {"run.steps": 3}})
    out = tmp_path / "cmp.html"
    assert main(["report", str(tmp_path / "runs"), "-o", str(out), "--no-traversals", "-q"]) == 0
    nonsyn = "nonsyn model.convtranspose_init=pytorch0.4 model.fc_relus=paper steps=4"
    vae = "vae model.convtranspose_init=modern model.fc_relus=final steps=3"
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: the settings compared here differ outside their objectives' own tables")
    assert err[1:] == [
        f"  - run.steps: 4 ({nonsyn}); 3 ({vae})",
        f'  - model.fc_relus: "paper" ({nonsyn}); "final" ({vae})',
        f'  - model.convtranspose_init: "pytorch0.4" ({nonsyn}); "modern" ({vae})',
    ]
    page = out.read_text(encoding="utf-8")
    box = re.search(r'<div class="warning".*?</div>', page).group(0)
    assert page.index(box) < page.index("Settings: mean ± std over seeds")
    assert f"<li><code>model.fc_relus: &quot;paper&quot; ({nonsyn}); &quot;final&quot; ({vae})</code></li>" in box
    assert box.count("<li>") == 3


def test_a_comparison_on_one_network_has_no_warning_and_shows_wms_beside_s_max(tmp_path):
    _fake_runs(tmp_path / "runs", {"nonsyn": {}, "vae": {}})
    warned = []
    out = write_report([tmp_path / "runs"], tmp_path / "cmp.html", traversals=False, samples=0, warn=warned.append)
    page = out.read_text(encoding="utf-8")
    assert warned == [] and 'class="warning"' not in page
    assert page.count("<th>mig</th><th>synergy S_max</th><th>synergy WMS</th>") == 2  # settings and runs tables
    # Non-Syn: S_max 0.3, 0.5 -> 0.4 ± 0.14; WMS 0.1, 0.2 -> 0.15 ± 0.071; the VAE's single run 0.2 and -0.3.
    row = re.search(r"<tr><td>nonsyn</td><td class=\"num\">2</td>.*?</tr>", page).group(0)
    assert '<td class="num">0.4 ± 0.14</td><td class="num">0.15 ± 0.071</td>' in row
    run_row = re.search(r"<tr><td>vae-s0</td>.*?</tr>", page).group(0)
    assert run_row.endswith('<td class="num">0.2</td><td class="num">-0.3</td></tr>')


def test_a_dollar_in_a_runs_name_is_drawn_as_written(report_sweep, tmp_path, capsys):
    """issue 29, case 12: matplotlib read '$...$' in a title as mathematics and failed (ParseSyntaxException)."""
    run = tmp_path / "cost a$^$b"  # "$^$" is not valid mathtext (an even number of "$" makes matplotlib parse it)
    shutil.copytree(report_sweep / "runs" / "nonsyn-s0", run)
    assert main(["report", str(run), "--samples", "0", "--no-traversals", "-q"]) == 0, capsys.readouterr().err
    assert (run / "report.html").is_file()
    out = tmp_path / "curves.png"
    assert main(["plot", "curves", str(run), "-o", str(out)]) == 0, capsys.readouterr().err
    assert out.stat().st_size > 0
