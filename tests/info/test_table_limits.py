"""A joint table's size is checked before it is built (issue 29, case 8: a 120-byte CSV of 2 rows x 27 binary
predictors reached 9.5 GB; a 400-row diagonal table 5.8 GB; 300 rows of --samples 2.4 GB)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.info._distribution import MAX_TABLE_CELLS, check_table_cells
from nsvae.info.estimate import counts_from_samples


def _one_line_refusal(capsys, argv, *expected):
    started = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - started < 10  # refused before any work, not after minutes
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than the limit of" in err and "--max-cells N" in err, err
    for text in expected:
        assert text in err
    return err


def test_many_binary_predictors(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    path.write_text(
        "\n".join(",".join(["0"] * 28 + ["0.5"]) if i == 0 else ",".join(["1"] * 28 + ["0.5"]) for i in range(2))
    )
    _one_line_refusal(capsys, ["info", str(path)], "268,435,456 cells", "2 x 2 x 2")


def test_a_large_diagonal_table(tmp_path, capsys):
    path = tmp_path / "diag.csv"
    path.write_text("\n".join(f"{i},{i},{i},{1 / 400}" for i in range(400)) + "\n")
    _one_line_refusal(capsys, ["info", str(path)], "64,000,000 cells", "400 x 400 x 400")


def test_many_distinct_samples(tmp_path, capsys):
    path = tmp_path / "spikes.csv"
    rows = np.arange(1200).reshape(300, 4)  # every value distinct: 300 symbols in each column
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    _one_line_refusal(capsys, ["info", str(path), "--samples"], "300 x 300 x 300 x 300")


def test_the_limit_can_be_raised_and_is_checked(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("0,0,0.5\n1,1,0.5\n")
    assert main(["info", str(path), "--max-cells", "3"]) == 2
    assert "4 cells" in capsys.readouterr().err
    assert main(["info", str(path), "--max-cells", "4", "--json"]) == 0
    capsys.readouterr()
    assert main(["info", str(path), "--max-cells", "0"]) == 2
    assert "--max-cells must be at least 1" in capsys.readouterr().err


def test_the_library_checks_too():
    assert MAX_TABLE_CELLS == 2**24
    check_table_cells((2**12, 2**12))  # exactly the limit is allowed
    with pytest.raises(ValueError, match="16,777,217 cells"):
        check_table_cells((2**24 + 1,))
    with pytest.raises(ValueError, match="more than the limit of 10"):
        counts_from_samples(np.arange(8).reshape(4, 2), max_cells=10)
