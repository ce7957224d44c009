"""A study's numbers: the final table, paired differences with bootstrap intervals, the verdicts, the figures."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.experiments import study_analysis as sa

ROWS = [
    {"method": "nonsyn", "seed": 0, "step": 100, "mig": 0.30, "synergy": 0.5},
    {"method": "nonsyn", "seed": 1, "step": 100, "mig": 0.20, "synergy": 0.4},
    {"method": "nonsyn", "seed": 2, "step": 100, "mig": 0.40, "synergy": 0.6},
    {"method": "vae", "seed": 0, "step": 100, "mig": 0.10, "synergy": 0.5},
    {"method": "vae", "seed": 1, "step": 100, "mig": 0.05, "synergy": 0.5},
    {"method": "vae", "seed": 3, "step": 100, "mig": 0.90, "synergy": 0.5},
]


def test_final_table_mean_sd_and_n():
    table = sa.final_table(ROWS)
    mean, sd, n = table["nonsyn"]["mig"]
    assert (mean, n) == (pytest.approx(0.3), 3)
    assert sd == pytest.approx(0.1)  # ddof = 1
    assert table["vae"]["synergy"] == (pytest.approx(0.5), pytest.approx(0.0), 3)
    one = sa.final_table(ROWS[:1])
    assert math.isnan(one["nonsyn"]["mig"][1])
    text = sa.format_final_table(table, ["mig"])
    assert "| nonsyn | 0.300 ± 0.100 (3) |" in text


def test_paired_differences_use_the_shared_seeds_only():
    diffs = {d["metric"]: d for d in sa.paired_differences(ROWS, "nonsyn", ["vae"])}
    mig = diffs["mig"]
    assert mig["n"] == 2  # seeds 0 and 1: vae has no seed 2, nonsyn no seed 3
    assert mig["differences"] == pytest.approx([0.20, 0.15])
    assert mig["mean"] == pytest.approx(0.175)
    assert mig["low"] >= 0.15 - 1e-12 and mig["high"] <= 0.20 + 1e-12  # the mean of resampled pairs lies between
    assert diffs["synergy"]["differences"] == pytest.approx([0.0, -0.1])


def test_bootstrap_interval_matches_a_literal_resampling():
    values = [0.1, -0.2, 0.4, 0.05]
    rng = np.random.default_rng(5)
    draws = np.array(values)[rng.integers(0, 4, size=(2000, 4))].mean(axis=1)
    assert sa.bootstrap_interval(values, n_boot=2000, seed=5) == (
        pytest.approx(np.quantile(draws, 0.025)),
        pytest.approx(np.quantile(draws, 0.975)),
    )
    assert sa.bootstrap_interval([0.3, 0.3, 0.3]) == (pytest.approx(0.3), pytest.approx(0.3))


@pytest.mark.parametrize(
    "low, high, higher, p_greater, p_less, expected",
    [
        (0.1, 0.3, True, 0.03, 1.0, "supported"),
        (0.1, 0.3, False, 0.03, 1.0, "not supported"),
        (-0.3, -0.1, True, 1.0, 0.03, "not supported"),
        (-0.3, -0.1, False, 1.0, 0.03, "supported"),
        (-0.1, 0.2, True, 0.03, 1.0, "undecided at this budget"),
        (0.0, 0.2, True, 0.03, 1.0, "undecided at this budget"),
        # an interval clear of 0 is not enough: three seeds of one sign give p = 1/8
        (0.1, 0.3, True, 0.125, 1.0, "undecided at this budget"),
        (-0.3, -0.1, True, 1.0, 0.125, "undecided at this budget"),
    ],
)
def test_verdicts(low, high, higher, p_greater, p_less, expected):
    assert sa.verdict(low, high, higher, p_greater, p_less) == expected


def _literal_sign_flip(diffs, alternative):
    """Every sign assignment written out with itertools, the mean compared as a fraction-free sum."""
    observed = sum(diffs)
    sums = [sum(s * abs(d) for s, d in zip(signs, diffs)) for signs in itertools.product((1, -1), repeat=len(diffs))]
    if alternative == "greater":
        hits = [t >= observed - 1e-12 for t in sums]
    elif alternative == "less":
        hits = [t <= observed + 1e-12 for t in sums]
    else:
        hits = [abs(t) >= abs(observed) - 1e-12 for t in sums]
    return sum(hits) / len(sums)


def test_sign_flip_p_exact_values():
    assert sa.sign_flip_p([1.0, 2.0, 3.0], "greater") == 1 / 8  # only the observed signs reach a mean of 2
    assert sa.sign_flip_p([1.0, 2.0, 3.0], "less") == 1.0
    assert sa.sign_flip_p([1.0, -2.0, 3.0], "greater") == 3 / 8  # sums 6, 4, 2 reach the observed 2
    assert sa.sign_flip_p([1.0, -2.0, 3.0], "two-sided") == 6 / 8
    assert sa.sign_flip_p([0.1] * 5, "greater") == 1 / 32  # five seeds: the smallest p, below 0.05
    assert sa.sign_flip_p([0.0, 0.0], "two-sided") == 1.0
    rng = np.random.default_rng(3)
    for n in (1, 2, 4, 7):
        diffs = rng.normal(0.1, 0.3, n).round(3).tolist()
        for alternative in ("greater", "less", "two-sided"):
            assert sa.sign_flip_p(diffs, alternative) == pytest.approx(
                _literal_sign_flip(diffs, alternative), abs=1e-15
            )
    with pytest.raises(ValueError):
        sa.sign_flip_p([], "greater")
    with pytest.raises(ValueError):
        sa.sign_flip_p([1.0], "bigger")


def test_sign_flip_p_beyond_exact_enumeration_samples_assignments():
    n = sa.EXACT_UP_TO + 2
    p = sa.sign_flip_p([0.5] * n, "greater", n_random=999)
    assert p == pytest.approx(1 / 1000, rel=0.5)  # the observed assignment alone (counted), barring a 2^-22 draw
    mixed = np.random.default_rng(0).normal(0.0, 1.0, n)
    assert 0.05 < sa.sign_flip_p(mixed, "two-sided", n_random=4000) <= 1.0


def _fake_study(root):
    """A study directory as nsvae study writes it: two methods x two seeds, curves at two steps."""
    from PIL import Image

    from nsvae.experiments import study

    folder = root / "studies" / "fake"
    curve, final = [], []
    for method in ("nonsyn", "vae"):
        for seed in (0, 1):
            name = f"{method}-seed{seed}"
            run = folder / "runs" / name
            run.mkdir(parents=True)
            score = 0.5 + 0.1 * seed + (0.2 if method == "nonsyn" else 0.0)
            rows = [
                {"method": method, "seed": seed, "step": 10, "mig": score / 2, "synergy": 0.3},
                {"method": method, "seed": seed, "step": 20, "mig": score, "synergy": 0.2},
            ]
            curve += rows
            (run / "curve.csv").write_text(study._csv_text(["method", "seed", "step", "mig", "synergy"], rows))
            record = {"method": method, "seed": seed, "step": 20, "scores": {"factor_vae_score": score, "mig": score}}
            (run / "final.json").write_text(json.dumps(record))
            shade = int(255 * score)
            Image.fromarray(np.full((20, 30), shade, dtype=np.uint8)).save(run / "traversal.png")
            final.append(record)
    study.write_tables(folder)
    return folder


def _fake_spec(root):
    """The study file of :func:`_fake_study`'s runs."""
    spec = root / "fake.toml"
    spec.write_text(
        'name = "fake"\nseeds = [0, 1]\n[set]\n"eval.every" = 10\n"run.steps" = 20\n'
        '[[runs]]\nname = "nonsyn"\nconfig = "quick-nonsyn"\n[[runs]]\nname = "vae"\nconfig = "quick-vae"\n'
    )
    return spec


def test_the_study_figures_and_summary(tmp_path, capsys):
    folder = _fake_study(tmp_path)
    out = tmp_path / "curves.png"
    assert main(["plot", "study-curves", str(folder), "-o", str(out), "--metrics", "mig", "synergy"]) == 0
    assert out.stat().st_size > 1000
    assert main(["plot", "study-traversals", str(folder), "-o", str(tmp_path / "t.png")]) == 0
    assert main(["plot", "study-curves", str(folder), "-o", str(out), "--metrics", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["plot", "study-traversals", str(tmp_path), "-o", str(tmp_path / "t.png")]) == 2
    from nsvae.viz.study import extremes

    rows = [{"method": "vae", "seed": s, "mig": v} for s, v in ((0, 0.2), (1, 0.9), (2, 0.1))]
    assert extremes(rows, "mig") == {"vae": (1, 2)}


def _write_in_flight(folder, name, rows):
    from nsvae.experiments import study

    (folder / study.IN_FLIGHT).mkdir(parents=True, exist_ok=True)
    (folder / study.IN_FLIGHT / f"{name}.csv").write_text(study._csv_text(["method", "seed", "step", "mig"], rows))


def test_runs_in_flight_are_dashed_lines_of_their_own(tmp_path, capsys):
    from nsvae.experiments import study
    from nsvae.viz.study import learning_curves

    folder = _fake_study(tmp_path)
    training = [{"method": "vae", "seed": 2, "step": 10, "mig": 0.4}]
    _write_in_flight(folder, "vae-seed2", training)
    # vae-seed0 has finished since its in-flight file was written: its finished files hold its curve
    _write_in_flight(folder, "vae-seed0", [{"method": "vae", "seed": 0, "step": 10, "mig": 0.9}])
    in_flight = study.in_flight_rows(folder)
    assert in_flight == training

    fig = learning_curves(study.read_table(folder / study.RESULTS_CSV), ["mig"], in_flight=in_flight)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    dashed = lines["vae seed 2, training (to step 10)"]
    assert dashed.get_linestyle() == "--" and list(dashed.get_xdata()) == [10]
    # the finished seeds' mean keeps both of its steps: a run half way does not cut it short
    assert list(lines["vae (n=2)"].get_xdata()) == [10, 20]
    assert list(lines["vae (n=2)"].get_ydata()) == pytest.approx([0.275, 0.55])
    assert dashed.get_color() == lines["vae (n=2)"].get_color() != lines["nonsyn (n=2)"].get_color()
    import matplotlib.pyplot as plt

    plt.close(fig)

    # a study no run of which has finished yet: only --in-flight can draw it
    young = tmp_path / "studies" / "young"
    _write_in_flight(young, "vae-seed0", [{"method": "vae", "seed": 0, "step": s, "mig": s / 100} for s in (10, 20)])
    out = tmp_path / "progress.png"
    assert main(["plot", "study-curves", str(young), "-o", str(out)]) == 2
    assert "--in-flight draws the runs still training" in capsys.readouterr().err
    assert main(["plot", "study-curves", str(young), "-o", str(out), "--in-flight"]) == 0
    assert out.stat().st_size > 1000
    empty = tmp_path / "studies" / "empty"
    empty.mkdir()
    assert main(["plot", "study-curves", str(empty), "-o", str(out), "--in-flight"]) == 2
    assert "no curve points of runs in flight" in capsys.readouterr().err
    assert main(["plot", "study-traversals", str(folder), "-o", str(out), "--in-flight"]) == 2
    assert "--in-flight applies to the study-curves figure only" in capsys.readouterr().err


def test_summary_of_a_study(tmp_path, capsys, monkeypatch):
    folder = _fake_study(tmp_path)
    spec = _fake_spec(tmp_path)
    assert main(["study", str(spec), "--studies-dir", str(folder.parent), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 runs done" in out
    assert "Machine time of the 4 finished runs" in out
    assert "| nonsyn | 0.750 ± 0.071 (2) |" in out
    assert "| nonsyn − vae | factor_vae_score | +0.200 | [+0.200, +0.200] | [+0.200, +0.200] | – | 0.500 | 2 |" in out
    # two seeds of one sign: the interval excludes 0, but p = 1/4 decides nothing
    assert "- **The Non-Syn VAE disentangles better than the VAE: undecided at this budget.**" in out
    assert "one-sided p = 0.250 (the claimed side), n = 2 (per seed: +0.200, +0.200): undecided at this budget" in out
    assert "The Non-Syn VAE lowers the measured synergy (than the VAE): no data yet" in out
    args = ["study", str(spec), "--studies-dir", str(folder.parent), "--summary", "--metrics", "mig"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| method | mig |" in out and "factor_vae_score |" not in out.split("Findings")[0]
    assert "- **The Non-Syn VAE disentangles better than the VAE: undecided at this budget.**" in out
    assert main([*args[:-1], "nope"]) == 2
    assert "--metrics: fake has no column 'nope'; columns: factor_vae_score, mig" in capsys.readouterr().err


def _claim_rows(d_score, d_syn, f_syn):
    rows = []
    for seed, (ds, dy, fy) in enumerate(zip(d_score, d_syn, f_syn)):
        rows.append({"method": "vae", "seed": seed, "factor_vae_score": 0.5, "mig": 0.1, "synergy": 0.4})
        rows.append({"method": "ns", "seed": seed, "factor_vae_score": 0.5 + ds, "mig": 0.1 + ds, "synergy": 0.4 + dy})
        rows.append({"method": "fv", "seed": seed, "factor_vae_score": 0.5, "mig": 0.1, "synergy": 0.4 + fy})
    return rows


def test_findings_name_each_claims_verdict():
    rows = _claim_rows(
        d_score=(0.10, 0.20, 0.15, 0.12, 0.18),  # five seeds of one sign: p = 1/32
        d_syn=(-0.05, 0.04, -0.01, 0.02, -0.03),  # both signs
        f_syn=(0.02, 0.03, 0.01, 0.02, 0.04),  # FactorVAE's synergy higher on every seed
    )
    found = {f["claim"]: f for f in sa.findings(rows, {"nonsyn": "ns", "vae": "vae", "factor_vae": "fv"})}
    better = found["The Non-Syn VAE disentangles better than the VAE"]
    assert better["verdict"] == "supported"
    assert [d["metric"] for d in better["differences"]] == ["factor_vae_score", "mig"]  # no DCI in these rows
    assert all(d["p_claimed"] == 1 / 32 for d in better["differences"])
    assert found["The Non-Syn VAE lowers the measured synergy (than the VAE)"]["verdict"] == "undecided at this budget"
    assert found["FactorVAE lowers synergy implicitly (than the VAE)"]["verdict"] == "not supported"
    text = sa.format_findings(list(found.values()))
    assert "- **FactorVAE lowers synergy implicitly (than the VAE): not supported.**" in text
    assert sa.findings(rows, {"nonsyn": "ns"}) == []
    assert sa.overall(["supported", "undecided at this budget"]) == "undecided at this budget"


def test_three_seeds_decide_no_claim():
    """The same one-sided effects on the first three seeds only: the intervals exclude 0, the exact test cannot."""
    rows = _claim_rows(d_score=(0.10, 0.20, 0.15), d_syn=(-0.05, -0.04, -0.01), f_syn=(0.02, 0.03, 0.01))
    found = sa.findings(rows, {"nonsyn": "ns", "vae": "vae", "factor_vae": "fv"})
    assert all(d["low"] > 0 or d["high"] < 0 for f in found for d in f["differences"])
    assert [f["verdict"] for f in found] == ["undecided at this budget"] * 3


def test_machine_time_adds_the_runs_seconds(tmp_path):
    from nsvae.experiments import study

    folder = _fake_study(tmp_path)
    seconds = {
        "nonsyn-seed0": {"train_and_curve": 3600.0, "curve_evaluations": 360.0, "final_evaluation": 720.0},
        "nonsyn-seed1": {"train_and_curve": 7200.0, "curve_evaluations": 720.0, "final_evaluation": 0.0},
        "vae-seed0": {"train_and_curve": None, "curve_evaluations": 0.0, "final_evaluation": 1800.0},
    }
    for name, values in seconds.items():
        path = folder / "runs" / name / "final.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "seconds": values}))
    cost = study.machine_time(folder)
    assert cost["runs"] == 4  # vae-seed1 has no seconds at all
    assert cost["unknown"] == 2
    assert cost["train_and_curve"] == pytest.approx(3.0)
    assert cost["curve_evaluations"] == pytest.approx(0.3)  # inside train_and_curve, not added again
    assert cost["final_evaluation"] == pytest.approx(0.7)
    assert cost["total"] == pytest.approx(3.7)
    assert cost["per_method"] == pytest.approx({"nonsyn": 3.2, "vae": 0.5})
    text = study.format_machine_time(cost)
    assert "3.7 CPU-hours = 3.0 h training with curve points (0.3 h of them curve points) + 0.7 h" in text
    assert "per method: nonsyn 3.2, vae 0.5." in text
    assert "2 run(s) recorded no training time" in text


def test_synergy_terms_split_the_final_synergy_into_joint_and_redundant_parts(tmp_path, capsys):
    from nsvae.experiments import study

    folder = _fake_study(tmp_path)
    per_factor = {
        # S_max / H = (2.0 - 0.5) / 4.0 = 0.375, WMS / H = (2.0 - 1.0) / 4.0 = 0.25
        "posX": {"i_joint": 2.0, "i_max": 0.5, "sum_single": 1.0, "entropy": 4.0, "s_max": 0.375, "wms": 0.25},
        # S_max / H = (1.0 - 0.5) / 2.0 = 0.25, WMS / H = (1.0 - 0.8) / 2.0 = 0.1
        "scale": {"i_joint": 1.0, "i_max": 0.5, "sum_single": 0.8, "entropy": 2.0, "s_max": 0.25, "wms": 0.1},
        "shape": {"skipped": "the factor takes one value in the population"},
    }
    path = folder / "runs" / "vae-seed1" / "final.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "evaluation": {"metrics": {"synergy": {"per_factor": per_factor}}}}))
    rows = study.synergy_terms(folder)
    assert len(rows) == 1  # the other runs' final.json have no synergy
    assert rows[0]["method"] == "vae" and rows[0]["seed"] == 1
    assert rows[0]["synergy.joint"] == pytest.approx((0.5 + 0.5) / 2)
    assert rows[0]["synergy.i_max"] == pytest.approx((0.125 + 0.25) / 2)
    assert rows[0]["synergy.sum_single"] == pytest.approx((0.25 + 0.4) / 2)
    assert rows[0]["synergy"] == pytest.approx((0.375 + 0.25) / 2)  # the mean of the factors' S_max / H
    spec = _fake_spec(tmp_path)
    assert main(["study", str(spec), "--studies-dir", str(folder.parent), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "| method | synergy.joint | synergy.i_max | synergy.sum_single | synergy |" in out
    assert "| vae | 0.500 (1) | 0.188 (1) | 0.325 (1) | 0.312 (1) |" in out


def test_spearman_exact_values():
    assert sa.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sa.spearman([1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    # no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (-1, 1, -1, 1, 0): 1 - 24/120
    assert sa.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # a tie takes the mean rank (1.5, 1.5, 3, 4): 4.5 / sqrt(4.5 * 5) by hand
    assert sa.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # monotone transforms do not change ranks
    assert sa.spearman([0.1, 0.5, 0.2, 0.9], [1, 2, 3, 4]) == pytest.approx(sa.spearman([1, 5, 2, 9], [-4, -3, -2, -1]))
    assert math.isnan(sa.spearman([1, 2], [2, 1]))  # fewer than 3 pairs
    assert math.isnan(sa.spearman([1, 1, 1], [1, 2, 3]))  # a constant side has no ranking
    with pytest.raises(ValueError):
        sa.spearman([1, 2, 3], [1, 2])


def test_rank_correlations_pooled_and_within_each_method():
    rows = [
        {"method": "a", "seed": s, "synergy": syn, "mig": mig, "active_units": 10}
        for s, (syn, mig) in enumerate([(0.9, 0.1), (0.8, 0.2), (0.7, 0.3)])
    ] + [
        {"method": "b", "seed": s, "synergy": syn, "mig": mig, "active_units": 10}
        for s, (syn, mig) in enumerate([(0.1, 0.5), (0.2, 0.7), (0.3, 0.6)])
    ]
    corr = sa.rank_correlations(rows, "synergy")
    assert list(corr) == ["mig", "active_units"]  # the column against itself is left out
    assert corr["mig"]["a"] == (pytest.approx(-1.0), 3)
    assert corr["mig"]["b"] == (pytest.approx(0.5), 3)  # ranks (1, 2, 3) vs (1, 3, 2)
    # pooled: synergy ranks (6, 5, 4, 1, 2, 3), mig ranks (1, 2, 3, 4, 6, 5): d = (5, 3, 1, -3, -4, -2)
    assert corr["mig"]["all runs"] == (pytest.approx(1 - 6 * 64 / (6 * 35)), 6)
    assert math.isnan(corr["active_units"]["all runs"][0])
    table = sa.format_rank_correlations(corr, "synergy")
    assert table.splitlines()[0] == "| synergy vs | all runs | a | b |"
    assert "| mig | -0.83 (6) | -1.00 (3) | +0.50 (3) |" in table
    assert "| active_units | – (6) | – (3) | – (3) |" in table


def test_paired_differences_carry_the_t_interval_and_the_effect_size():
    rows = [
        {"method": m, "seed": s, "step": 1, "x": v}
        for m, vals in (("a", [1, 2, 3]), ("b", [0, 0, 0]))
        for s, v in enumerate(vals)
    ]
    (d,) = sa.paired_differences(rows, "a", ["b"], ["x"])
    half = 4.302652729749462 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n); differences 1, 2, 3
    assert (d["t_low"], d["t_high"]) == pytest.approx((2 - half, 2 + half), abs=1e-9)
    assert d["effect_size"] == pytest.approx(2.0)
    table = sa.format_differences([d])
    assert (
        f"| a − b | x | +2.000 | [+1.000, +3.000] | [{2 - half:+.3f}, {2 + half:+.3f}] | +2.00 | 0.250 | 3 |" in table
    )


def test_detectable_effects_and_the_multiple_comparisons_sentence():
    found = [{"claim": "c", "differences": [{"metric": "x", "n": 5, "differences": [0.1, -0.1, 0.2, 0.0, -0.2]}]}]
    (row,) = sa.detectable_effects(found)
    sd = float(np.std([0.1, -0.1, 0.2, 0.0, -0.2], ddof=1))
    assert row["sd"] == pytest.approx(sd) and row["in_sds"] == pytest.approx(1.7098, abs=0.01)
    assert row["in_units"] == pytest.approx(row["in_sds"] * sd)
    assert "| c | x | 5 |" in sa.format_detectable_effects([row])
    note = sa.multiple_comparisons_note(3)
    assert "at most 0.15 (3 × 0.05)" in note and "0.0167" in note


def test_udr_of_a_study_comes_from_the_runs_samples_without_any_checkpoint(tmp_path, capsys):
    from nsvae.evaluation import write_udr_sample
    from nsvae.experiments import study
    from nsvae.metrics.udr import udr_scores

    folder = _fake_study(tmp_path)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 3))
    logvar = np.full((300, 3), -4.0)
    codes = {
        ("nonsyn", 0): base,
        ("nonsyn", 1): -base[:, [2, 0, 1]],  # the same code, permuted and flipped: UDR near 1
        ("vae", 0): rng.standard_normal((300, 3)),
        ("vae", 1): rng.standard_normal((300, 3)),  # unrelated codes: UDR low
    }
    factors = np.zeros((300, 1), np.int64)
    for (method, seed), mean in codes.items():
        sample = {"factors": factors, "mean": mean, "logvar": logvar, "protocol": {"num_data_points": 300}}
        write_udr_sample(folder / "runs" / f"{method}-seed{seed}" / "udr_sample.npz", sample)
    scores = study.udr_scores_of(folder)
    expected = udr_scores([codes[("vae", 0)], codes[("vae", 1)]], [logvar, logvar])["model_scores"]
    assert [scores[f"vae-seed{s}"]["udr"] for s in (0, 1)] == pytest.approx(expected, abs=1e-6)
    assert scores["nonsyn-seed0"]["udr"] > 0.8 > 0.5 > scores["vae-seed0"]["udr"]
    assert scores["nonsyn-seed0"]["informative"] == 3
    (folder / "runs" / "vae-seed1" / "udr_sample.npz").unlink()  # one run of a method: no UDR for it
    assert set(study.udr_scores_of(folder)) == {"nonsyn-seed0", "nonsyn-seed1"}
    assert main(["study", str(_fake_spec(tmp_path)), "--studies-dir", str(folder.parent), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "UDR (Duan et al. 2020" in out and "| nonsyn | " in out.split("UDR (Duan")[1]
    assert "| udr vs | all runs | nonsyn |" in out


def test_the_summary_of_a_study_decided_in_looks_prints_the_looks_verdicts(tmp_path, capsys):
    from nsvae.experiments import study

    folder = tmp_path / "studies" / "study-authors"
    rows = []
    for seed in range(5):
        for method, shift in (("vae", 0.0), ("nonsyn", 0.1 + 0.01 * seed), ("beta_tcvae", 0.2)):
            if method == "beta_tcvae" and seed > 2:
                continue
            row = {"method": method, "seed": seed, "step": 149760, "dci": 0.1 + shift, "mig": 0.05 + shift}
            row["synergy"] = 0.8 - (0.001 * (-1) ** seed if method == "nonsyn" else 0.0)
            run = folder / "runs" / f"{method}-seed{seed}"
            run.mkdir(parents=True)
            (run / "final.json").write_text(json.dumps({"method": method, "seed": seed, "scores": row}))
            rows.append(row)
    (folder / "final.csv").write_text(study._csv_text(["method", "seed", "step", "dci", "mig", "synergy"], rows))
    assert main(["study", "study-authors", "--studies-dir", str(folder.parent), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "Look 1 (5 paired seeds, one-sided level 0.03125; 5 paired seeds finished):" in out
    assert "- **The Non-Syn VAE disentangles better than the VAE: supported.**" in out
    assert "- **The Non-Syn VAE lowers the measured synergy (than the VAE): no effect larger than 0.219.**" in out
    assert "The positive control (β-TCVAE − VAE" in out and "| beta_tcvae − vae | dci | +0.200 |" in out
