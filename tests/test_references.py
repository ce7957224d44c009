"""Everything the code and the docs cite is in the repository (the design's first convention).

Scanned: the package's sources and data files (``src/nsvae``), ``docs/`` (every ``.md``) and ``README.md``.

- every ``*.md`` path they name exists in the repository: relative to the citing file, to the repository root,
  or (a bare file name) in ``docs/``; addresses on other sites (``github.com/...``) are not paths;
- every ``docs/...`` file they name exists;
- none names the private briefing folder (``shared/reference``, ``../shared/...``): its facts live in
  ``docs/reference/``;
- every section a citation names ("docs/reference/X.md §N", "§5.3–5.4", "§7 Q1, Q4") is a numbered heading
  (and Q row) of that page. A bare "§N" refers to the page itself inside ``docs/reference/``, elsewhere to the
  ``docs/reference/`` page the file cited last; one right after a year or an issue number ("Boyd &
  Vandenberghe 2004, §11.3", "issue 17, §1") cites something else and is not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nsvae"
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
TEXT_SUFFIXES = {".py", ".toml", ".md", ".txt", ".json", ".cfg", ".ini", ".yaml", ".yml", ".sh"}

#: A path ending in .md, starting where a path can start (not inside a URL or another path).
MD_PATH = re.compile(r"(?<![\w./:@-])((?:\.\.?/)*\w[\w./-]*\.md)\b")
#: A file under docs/ with an extension.
DOCS_PATH = re.compile(r"(?<![\w./:@-])(docs/[\w./-]*\w\.[A-Za-z0-9]+)\b")
#: The briefing folder beside the checkout, in any spelling.
BRIEFING = re.compile(r"shared/reference|\.\./shared/|/work/shared|seed-non-synergistic-vae\.txt")

_NUMBER = r"\d+(?:\.\d+)*"
#: "§1.2", "§0, §3", "§1.2 and §7", "§5.3–5.4", optionally followed by Q labels of a table ("§7 Q1, Q4").
SECTIONS = re.compile(
    rf"§\s*(?P<first>{_NUMBER})"
    rf"(?P<more>(?:\s*(?:,|and|or)\s*§\s*{_NUMBER}|\s*[–-]\s*§?\s*{_NUMBER})*)"
    r"(?P<labels>\s+Q\d+(?:\s*,\s*Q\d+)*)?"
)
#: A citation of a reference page, with the sections that follow it (across quotes, a comma or a line break).
CITATION = re.compile(r"docs/reference/(?P<page>[\w-]+\.md)(?P<gap>[`'\"*,)]*[ \t]*(?:\n[ \t]*#?[ \t]*)?)")
#: What, right before a bare "§", marks a citation of something else: a year or an issue number.
OTHER_SOURCE = re.compile(r"(?:\b(?:19|20)\d\d|\bissues?\s+\d+)\W*$", re.IGNORECASE)


def scanned_files() -> list[Path]:
    files = [p for p in SRC.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    files += DOCS.rglob("*.md")
    files.append(ROOT / "README.md")
    return sorted(set(files))


@cache
def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def where(path: Path, text: str, offset: int) -> str:
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return f"{name}:{line_of(text, offset)}"


def inside_repository(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT) and path.is_file()


def resolves(token: str, source: Path) -> bool:
    candidates = [source.parent / token, ROOT / token]
    if "/" not in token:
        candidates.append(DOCS / token)
    return any(inside_repository(c) for c in candidates)


def is_address(token: str) -> bool:
    """``github.com/owner/repo/README.md``: a page on another site, not a path here."""
    first = token.split("/", 1)[0]
    return "/" in token and first not in (".", "..") and "." in first


@dataclass(frozen=True)
class Cited:
    where: str
    page: str
    sections: tuple[str, ...]
    labels: tuple[str, ...]


def _parse(match: re.Match) -> tuple[tuple[str, ...], tuple[str, ...]]:
    sections = (match["first"], *re.findall(_NUMBER, match["more"] or ""))
    labels = tuple(re.findall(r"Q\d+", match["labels"] or ""))
    return sections, labels


def section_citations(path: Path) -> list[Cited]:
    """Every section citation of ``path``, explicit or bare, with the reference page it points to."""
    text = text_of(path)
    cited: list[Cited] = []
    explicit_spans: list[tuple[int, int]] = []
    pages_by_offset: list[tuple[int, str]] = []
    for citation in CITATION.finditer(text):
        pages_by_offset.append((citation.start(), citation["page"]))
        sections = SECTIONS.match(text, citation.end())
        if sections:
            explicit_spans.append((sections.start(), sections.end()))
            numbers, labels = _parse(sections)
            cited.append(Cited(where(path, text, citation.start()), citation["page"], numbers, labels))
    own_page = path.name if path.parent == REFERENCE else None
    for sections in SECTIONS.finditer(text):
        if any(start <= sections.start() < end for start, end in explicit_spans):
            continue
        if OTHER_SOURCE.search(text[max(0, sections.start() - 40) : sections.start()]):
            continue
        page = own_page
        if page is None:
            earlier = [name for offset, name in pages_by_offset if offset < sections.start()]
            if not earlier:
                continue  # no reference page cited before: a section of something else
            page = earlier[-1]
        numbers, labels = _parse(sections)
        cited.append(Cited(where(path, text, sections.start()), page, numbers, labels))
    return cited


@cache
def headings(page: str) -> frozenset[str]:
    """The section numbers of a reference page's headings ("## 1.5 The greedy selection" -> "1.5")."""
    text = text_of(REFERENCE / page)
    return frozenset(re.findall(rf"^#{{1,6}}\s+({_NUMBER})\.?\s", text, flags=re.MULTILINE))


@cache
def row_labels(page: str) -> frozenset[str]:
    return frozenset(re.findall(r"^\|\s*(Q\d+)\s*\|", text_of(REFERENCE / page), flags=re.MULTILINE))


FILES = scanned_files()


def test_the_scan_covers_the_code_the_docs_and_the_reference_pages():
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert "src/nsvae/objectives/nonsyn.py" in names and "src/nsvae/config/presets/nonsyn.toml" in names
    assert "docs/training.md" in names and "README.md" in names
    assert {"original-implementation.md", "published-numbers.md", "README.md"} <= {p.name for p in REFERENCE.iterdir()}


def test_every_cited_markdown_document_is_in_the_repository():
    missing = []
    for path in FILES:
        text = text_of(path)
        for match in MD_PATH.finditer(text):
            token = match[1]
            if not is_address(token) and not resolves(token, path):
                missing.append(f"{where(path, text, match.start())}: {token}")
    assert not missing, "documents cited but not in the repository (write them under docs/reference/):\n" + "\n".join(
        missing
    )


def test_every_cited_docs_file_exists():
    missing = []
    for path in FILES:
        text = text_of(path)
        for match in DOCS_PATH.finditer(text):
            if not inside_repository(ROOT / match[1]):
                missing.append(f"{where(path, text, match.start())}: {match[1]}")
    assert not missing, "files under docs/ cited but absent:\n" + "\n".join(missing)


def test_nothing_points_at_the_briefing_folder():
    found = []
    for path in FILES:
        text = text_of(path)
        found += [f"{where(path, text, m.start())}: {m[0]}" for m in BRIEFING.finditer(text)]
    assert not found, "the briefing folder is not part of the product; cite docs/reference/ instead:\n" + "\n".join(
        found
    )


def test_every_cited_section_is_a_heading_of_its_page():
    wrong = []
    for path in FILES:
        for cited in section_citations(path):
            if not (REFERENCE / cited.page).is_file():
                wrong.append(f"{cited.where}: docs/reference/{cited.page} does not exist")
                continue
            wrong += [
                f"{cited.where}: docs/reference/{cited.page} has no section {number}"
                for number in cited.sections
                if number not in headings(cited.page)
            ]
            wrong += [
                f"{cited.where}: docs/reference/{cited.page} has no row {label}"
                for label in cited.labels
                if label not in row_labels(cited.page)
            ]
    assert not wrong, "\n".join(wrong)


def test_the_code_cites_its_reference_pages():
    """The checks above see the citations they are meant for (a regex that matched nothing would pass)."""
    cited = {(c.page, n) for path in FILES for c in section_citations(path) for n in c.sections}
    assert ("original-implementation.md", "1.5") in cited  # objectives/selection.py
    assert ("original-implementation.md", "5.4") in cited  # docs/metrics.md, "§5.3–5.4"
    assert ("published-numbers.md", "5") in cited  # metrics/protocols.py


@pytest.mark.parametrize(
    "text, sections, labels",
    [
        ("see ``docs/reference/original-implementation.md`` §1.2 and §7, the faithful", ("1.2", "7"), ()),
        ("(docs/reference/original-implementation.md §0, §3). Seed 1", ("0", "3"), ()),
        ("(`docs/reference/original-implementation.md` §5.3–5.4); do not", ("5.3", "5.4"), ()),
        ("figure (``docs/reference/original-implementation.md``\n§5.1): one row", ("5.1",), ()),
        ("# network;\n# docs/reference/original-implementation.md §0, §3), the", ("0", "3"), ()),
        ("own mu and logvar (docs/reference/original-implementation.md §7 Q1, Q4);", ("7",), ("Q1", "Q4")),
    ],
)
def test_citations_are_parsed(tmp_path, text, sections, labels):
    path = tmp_path / "example.md"
    path.write_text(text, encoding="utf-8")
    text_of.cache_clear()
    (cited,) = section_citations(path)
    assert (cited.page, cited.sections, cited.labels) == ("original-implementation.md", sections, labels)


def test_bare_sections_follow_the_last_cited_page_and_skip_other_sources(tmp_path):
    path = tmp_path / "example.md"
    path.write_text(
        "See `docs/reference/published-numbers.md` §2. Later §5 and (§0).\n"
        "Boyd & Vandenberghe (2004, §11.3); issue 17, §1.\n",
        encoding="utf-8",
    )
    text_of.cache_clear()
    assert [(c.page, c.sections) for c in section_citations(path)] == [
        ("published-numbers.md", ("2",)),
        ("published-numbers.md", ("5",)),
        ("published-numbers.md", ("0",)),
    ]


def test_a_missing_document_and_a_missing_section_are_caught(tmp_path):
    source = SRC / "example.py"  # resolved as if it were in the package; never written
    assert not resolves("original-implementation.md", source)  # bare briefing name: not beside src/
    assert resolves("docs/reference/original-implementation.md", source)
    assert not resolves("../shared/reference/original-implementation.md", ROOT / "README.md")
    assert is_address("github.com/Gonzalob90/gonzalob90.github.io/README.md")
    assert not is_address("docs/reference/README.md")
    assert "99" not in headings("original-implementation.md") and "1.5" in headings("original-implementation.md")
    assert "Q1" in row_labels("original-implementation.md") and "Q99" not in row_labels("original-implementation.md")
