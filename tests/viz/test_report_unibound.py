"""The run report shows UniBound's per-factor bounds of unique, redundant and synergistic information."""

from __future__ import annotations

import html
import json
import re
import shutil

import numpy as np
import pytest

from nsvae import metrics
from nsvae.cli import main
from nsvae.metrics import entanglement as ent
from nsvae.metrics.utils import encode_table
from nsvae.viz.report_html import unibound_table

from .conftest import fake_evaluation

SIZES = (3, 6, 8)
NAMES = ("shape", "scale", "posX")


@pytest.fixture(scope="module")
def unibound_result():
    """A real ``unibound`` result, as eval.json stores it: every latent copied with noise std 1 (redundancy)."""
    data = ent.EntanglementGrid(SIZES, NAMES, 2)
    table = encode_table(data, represent_posterior=ent.entangled_code("noised_copy", 1.0, SIZES, 2))
    result = metrics.unibound(data, table, np.random.default_rng(0), num_samples=500)
    return json.loads(json.dumps(result))


def table_rows(table: str) -> dict[str, list[str]]:
    """Row cells (text, tags stripped) by their first cell."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
        rows[cells[0]] = cells[1:]
    return rows


def test_unibound_table_has_every_factor_s_latent_score_and_intervals(unibound_result):
    rows = table_rows(unibound_table({"metrics": {"unibound": unibound_result}}))
    assert rows["factor"][:5] == ["latent l*", "UniBound (U lower)", "U_l* ∈", "R ∈", "S ∈"]
    for i, name in enumerate(NAMES):
        entry = unibound_result["per_factor"][name]
        latent, score, unique, redundancy, synergy, max_r, max_s, i_joint, entropy = rows[name]
        assert latent == f"z{i}" and entry["latent"] == i  # the sharp original, not its copy
        assert float(score) == pytest.approx(entry["unibound"], abs=1e-3)
        for cell, atom in ((unique, "unique"), (redundancy, "redundancy"), (synergy, "synergy")):
            lo, hi = (float(x) for x in cell.strip("[]").split(", "))
            assert (lo, hi) == pytest.approx(tuple(entry[atom]), abs=1e-2), (name, atom)
        assert float(max_r) == pytest.approx(entry["max_redundancy_lower"], abs=1e-3)
        assert float(max_s) == pytest.approx(entry["max_synergy_lower"], abs=1e-3)
        assert float(i_joint) == pytest.approx(entry["i_joint"], abs=1e-3)
        assert float(entropy) == pytest.approx(np.log(SIZES[i]), abs=1e-3)
        # the copy with noise std 1 makes part of each factor redundant: a row that can show it
        assert 0.05 < entry["max_redundancy_lower"] < 0.95 and float(redundancy.strip("[]").split(", ")[0]) > 0.05


def test_unibound_table_names_skipped_factors_and_is_empty_without_unibound(unibound_result):
    result = json.loads(json.dumps(unibound_result))
    result["per_factor"]["key"] = {"skipped": "the factor takes one value in the population"}
    rows = table_rows(unibound_table({"metrics": {"unibound": result}}))
    assert rows["key"][0] == "the factor takes one value in the population"
    assert unibound_table({"metrics": {"mig": {"score": 0.5}}}) == ""
    assert unibound_table({"metrics": {"unibound": {"score": 0.5}}}) == ""


def test_the_run_page_shows_unibound_beside_the_synergy_table(report_sweep, tmp_path, unibound_result):
    run = tmp_path / "run"
    shutil.copytree(report_sweep / "runs" / "nonsyn-s0", run)
    evaluation = fake_evaluation({"mig": 0.1, "synergy": 0.3})
    evaluation["results"]["default"]["metrics"]["unibound"] = unibound_result
    (run / "eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
    assert main(["report", str(run), "--samples", "0", "--no-traversals", "-q"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    synergy = page.index("Synergy among the latents about each factor")
    pid = page.index("Unique, redundant and synergistic information per factor")
    assert synergy < pid
    rows = table_rows(page[pid:])
    assert rows["posX"][0] == "z2"
    assert "<b>unibound</b>" in page and "redundancy_lower=" in page  # the metric table's details
    # without a unibound result the page has no such section
    (run / "eval.json").write_text(json.dumps(fake_evaluation({"mig": 0.1, "synergy": 0.3})), encoding="utf-8")
    assert main(["report", str(run), "--samples", "0", "--no-traversals", "-q"]) == 0
    assert "Unique, redundant and synergistic" not in (run / "report.html").read_text(encoding="utf-8")
