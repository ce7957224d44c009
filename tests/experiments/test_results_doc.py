"""docs/results.md states the committed study's numbers: every table row and finding it quotes is what
`nsvae study study-cpu --summary` prints from studies/study-cpu today, so a run that lands without the
document being brought up to date fails here instead of leaving stale numbers in the answer."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from nsvae.cli import main

REPO = Path(__file__).resolve().parents[2]
RESULTS_DOC = REPO / "docs" / "results.md"
STUDY_DIR = REPO / "studies" / "study-cpu"
# The metrics of the document's final table, in its column order (the command it quotes).
DOC_METRICS = [
    "factor_vae_score",
    "mig",
    "dci",
    "chen_mig",
    "sap",
    "beta_vae_score",
    "synergy",
    "synergy.wms",
    "active_units",
]
SECTION_START = "## The multi-seed study"
SECTION_END = "## Quick comparison"

pytestmark = pytest.mark.skipif(
    not (STUDY_DIR / "final.csv").is_file() or not RESULTS_DOC.is_file(),
    reason="needs the repository's studies/ and docs/ (an sdist carries no studies)",
)


@pytest.fixture(scope="module")
def summary() -> str:
    # module-scoped, so the output is captured here rather than with capsys (a per-test fixture)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["study", "study-cpu", "--studies-dir", str(STUDY_DIR.parent), "--summary", "--metrics", *DOC_METRICS]
        )
    assert status == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def study_section() -> str:
    text = RESULTS_DOC.read_text(encoding="utf-8")
    start, end = text.index(SECTION_START), text.index(SECTION_END)
    return text[start:end]


def _table_rows(text: str, first_cell: str) -> list[str]:
    """The markdown table rows of `text` whose first cell starts with `first_cell`."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith(f"| {first_cell}")]


def _method_rows(text: str) -> list[str]:
    """Rows of the per-method tables (final table, synergy's terms): first cell a method name."""
    return [row for row in _table_rows(text, "") if re.match(r"\| [a-z_]+ \| [0-9]", row)]


def test_every_per_method_row_of_the_summary_is_in_the_document(summary, study_section):
    rows = _method_rows(summary)
    assert len(rows) >= 10  # the final table and the synergy's terms, five methods each
    missing = [row for row in rows if row not in study_section]
    assert not missing, "docs/results.md is stale; rerun the summary (results.md, 'Reproduce'):\n" + "\n".join(missing)


def test_every_paired_difference_the_document_quotes_is_the_summary_s(summary, study_section):
    quoted = _table_rows(study_section, "nonsyn − ")
    assert len(quoted) >= 15
    stale = [row for row in quoted if row not in summary]
    assert not stale, "stale paired differences in docs/results.md:\n" + "\n".join(stale)


def test_every_finding_line_the_document_quotes_is_the_summary_s(summary, study_section):
    quoted = [
        line.strip()
        for line in study_section.splitlines()
        if re.match(r"\s+(synergy|factor_vae_score|mig|dci)(\.wms)?: ", line)
    ]
    assert len(quoted) >= 7  # three claims: FactorVAE score, MIG, DCI; S_max, WMS; S_max, WMS
    printed = {line.strip() for line in summary.splitlines()}
    stale = [line for line in quoted if line not in printed]
    assert not stale, "stale findings in docs/results.md:\n" + "\n".join(stale)


def test_the_document_s_run_count_and_machine_time_are_the_summary_s(summary, study_section):
    done, total = map(int, re.match(r"study-cpu: (\d+) of (\d+) runs done", summary).groups())
    heading = study_section.splitlines()[0]
    if done == total:
        assert "runs done" not in heading, "the study is complete; the heading still counts runs"
    else:
        assert f"{done} of {total} runs done" in heading
    hours = re.search(r"([0-9.]+) CPU-hours", summary).group(1)
    assert f"**What it cost**: {hours} CPU-hours for the {done} runs" in study_section


def test_the_synergy_correlations_the_document_quotes_are_the_summary_s(summary, study_section):
    def rho_rows(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if re.match(r"\| [a-z_.]+ \| [+-][0-9.]+ \(\d+\) \|", line)]

    printed = rho_rows(summary)
    assert len(printed) >= 6
    assert rho_rows(study_section) == printed, "docs/results.md's synergy correlations differ from the summary's"


def test_the_detectable_effects_and_the_note_on_several_claims_are_the_summary_s(summary, study_section):
    rows = [line.strip() for line in summary.splitlines() if line.startswith(("| The Non-Syn", "| FactorVAE lowers"))]
    assert len(rows) == 7
    missing = [row for row in rows if row not in study_section]
    assert not missing, "stale detectable effects in docs/results.md:\n" + "\n".join(missing)
    note = next(line for line in summary.splitlines() if "claims are tested side by side" in line)
    assert note in study_section
    # the differences table carries the t-interval and the effect size beside the bootstrap interval
    assert "| difference | metric | mean | 95% bootstrap interval | 95% t-interval | effect size |" in study_section
