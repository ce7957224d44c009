"""The design of a study decided in looks: the level split, t-intervals, the minimal detectable effect, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from nsvae.experiments import looks


def test_the_looks_spend_at_most_five_percent_and_look_1_can_decide():
    (n1, a1), (n2, a2) = looks.LOOKS
    assert (n1, n2) == (5, 8)
    assert a1 == 2.0**-5  # the smallest one-sided p five seeds can give
    assert a1 + a2 <= 0.05 + 1e-15
    # with 8 seeds p is a multiple of 1/256: look 2 decides at p <= 4/256, 12/256 in all
    assert math.floor(a2 * 256) == 4


def test_the_t_interval_and_bound_are_the_textbook_ones():
    low, high = looks.t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977934 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) s / sqrt(n)
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-12)
    upper = looks.t_bound([1.0, 2.0, 3.0, 4.0, 5.0], 0.95, upper=True)
    assert upper == pytest.approx(3 + 2.1318467863266495 * math.sqrt(2.5) / math.sqrt(5), abs=1e-12)
    assert looks.t_bound([1.0, 2.0, 3.0, 4.0, 5.0], 0.95, upper=False) == pytest.approx(6 - upper, abs=1e-12)
    with pytest.raises(ValueError):
        looks.t_interval([1.0])


def test_effect_size_is_the_mean_over_the_sd():
    assert looks.effect_size([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    assert math.isnan(looks.effect_size([1.0, 1.0])) and math.isnan(looks.effect_size([1.0]))


def test_the_simulated_power_matches_the_closed_form_at_five_seeds():
    # at level 1/32 the test decides only when all five differences are positive: power Phi(d)^5
    for effect in (0.0, 1.0, 1.71):
        assert looks.sign_flip_power(effect, 5, 1 / 32) == pytest.approx(norm.cdf(effect) ** 5, abs=0.004)
    assert looks.minimal_detectable_effect(5, 1 / 32) == pytest.approx(norm.ppf(0.8**0.2), abs=0.01)


def test_with_no_effect_the_test_rejects_at_its_exact_size():
    assert looks.sign_flip_power(0.0, 8, looks.LOOKS[1][1]) == pytest.approx(4 / 256, abs=0.0015)
    assert looks.minimal_detectable_effect(4, 1 / 32) == math.inf  # four seeds can never reach p = 1/32
    assert 1.2 < looks.minimal_detectable_effect(8, looks.LOOKS[1][1]) < 1.45


@pytest.mark.parametrize(
    ("differences", "higher", "verdict"),
    [
        ([0.1, 0.2, 0.15, 0.05, 0.3], True, "supported"),
        ([0.1, 0.2, 0.15, 0.05, 0.3], False, "not supported"),
        ([-0.1, -0.2, -0.15, -0.05, -0.3], False, "supported"),
        ([0.1, 0.2, 0.15, -0.05, 0.3], True, "undecided"),  # one seed against: p = 2/32
        ([0.01, -0.01, 0.02, -0.02, 0.0], True, "no effect larger than 0.1"),
        ([0.01, -0.01, 0.02, -0.02, 0.0], False, "no effect larger than 0.1"),
        ([0.3, -0.3, 0.2, -0.2, 0.0], True, "undecided"),  # too noisy to exclude 0.1
    ],
)
def test_look_verdicts(differences, higher, verdict):
    assert looks.look_verdict(differences, higher, 1 / 32, 0.1) == verdict


def test_no_effect_needs_the_bound_short_of_the_detectable_effect_on_the_claimed_side():
    d = np.array([0.01, -0.01, 0.02, -0.02, 0.0]) + 0.015  # one seed below 0: p = 2/32; upper bound about 0.033
    bound = looks.t_bound(d, 1 - 1 / 32, upper=True)
    assert 0.03 < bound < 0.035
    assert looks.look_verdict(d, True, 1 / 32, bound + 1e-6).startswith("no effect larger than")
    assert looks.look_verdict(d, True, 1 / 32, bound - 1e-6) == "undecided"
    # on the claimed side only: for a lower-is-claimed metric the lower bound (about -0.003) counts
    assert looks.look_verdict(d, False, 1 / 32, 0.1) == "no effect larger than 0.1"


def test_the_detectable_effects_in_code_are_the_ones_results_md_fixed_before_the_runs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text(encoding="utf-8")
    section = text[text.index("### study-authors: the rule") : text.index("## The multi-seed study")]
    for metric, x1 in looks.DETECTABLE[1].items():
        x2 = looks.DETECTABLE[2][metric]
        shown = "synergy (S_max)" if metric == "synergy" else metric
        row = next(line for line in section.splitlines() if line.startswith(f"| {shown} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert (float(cells[3]), float(cells[4])) == (x1, x2), row


def _rows(dci, mig, syn, n):
    rows = []
    for seed in range(n):
        rows.append({"method": "vae", "seed": seed, "step": 1, "dci": 0.1, "mig": 0.05, "synergy": 0.8})
        rows.append(
            {"method": "nonsyn", "seed": seed, "step": 1, "dci": 0.1 + dci[seed], "mig": 0.05 + mig[seed],
             "synergy": 0.8 + syn[seed]}
        )  # fmt: skip
    return rows


SETTINGS = {"nonsyn": "nonsyn", "vae": "vae"}


def test_look_findings_before_look_1_decide_nothing():
    found = looks.look_findings(_rows([0.1] * 4, [0.1] * 4, [-0.1] * 4, 4), SETTINGS)
    assert found["look"] is None and all(c["verdict"] == "no look yet" for c in found["claims"])
    assert "No look yet: 4 paired seed(s)" in looks.format_look_findings(found)


def test_one_pair_prints_a_dash_where_no_t_interval_or_effect_size_exists():
    text = looks.format_look_findings(looks.look_findings(_rows([0.1], [0.05], [-0.1], 1), SETTINGS))
    assert "95% t –, bootstrap [+0.100, +0.100], effect size –, n = 1" in text and "nan" not in text


def test_look_1_supports_a_claim_whose_five_seeds_agree_and_bounds_a_null_one():
    up = [0.2, 0.25, 0.3, 0.22, 0.28]
    flat = [0.005, -0.004, 0.003, -0.002, 0.001]
    found = looks.look_findings(_rows(up, up, flat, 5), SETTINGS)
    assert found["look"] == 1 and found["n"] == 5
    better, synergy = found["claims"]
    assert better["verdict"] == "supported"
    assert synergy["verdict"] == "no effect larger than 0.219"
    text = looks.format_look_findings(found)
    assert "Look 1 (5 paired seeds, one-sided level 0.03125" in text and "**The Non-Syn VAE lowers" in text


def test_look_1_reads_its_five_seeds_only_and_look_2_needs_eight():
    seven = [0.2, 0.25, 0.3, 0.22, 0.28, -0.5, -0.5]
    found = looks.look_findings(_rows(seven, seven, [0.0] * 7, 7), SETTINGS)
    assert found["look"] == 1 and found["claims"][0]["verdict"] == "supported"  # seeds 5-6 are look 2's
    eight = [0.2, 0.25, 0.3, 0.22, 0.28, 0.21, -0.01, 0.24]  # one seed against: p = 2/256 <= 4/256
    found = looks.look_findings(_rows(eight, eight, [0.0] * 8, 8), SETTINGS)
    assert found["look"] == 2 and found["claims"][0]["verdict"] == "supported"


def test_mixed_metric_verdicts_leave_the_claim_undecided():
    assert looks.claim_verdict(["supported", "undecided"]) == "undecided"
    assert looks.claim_verdict(["no effect larger than 0.14", "no effect larger than 0.08"]).startswith(
        "no effect larger than the detectable one"
    )
