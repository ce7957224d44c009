"""`nsvae info`: formats, output and errors (exit status 2, one line)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nsvae import info
from nsvae.cli import main


def run(capsys, *args):
    code = main(["info", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_example_table(capsys):
    code, out, err = run(capsys, "--example", "and")
    assert code == 0 and err == ""
    assert re.search(r"^  S_max\s+0\.500000 ", out, re.M)
    assert re.search(r"^  S_VK\s+0\.500000 ", out, re.M)
    assert re.search(r"^  I_VK\s+0\.311278 +certified", out, re.M)
    assert "{1}{2}" in out and "redundancy" in out and "synergy" in out


def test_example_json(capsys):
    code, out, _ = run(capsys, "--example", "xor", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["s_max"] == pytest.approx(1.0) and data["s_vk"] == pytest.approx(1.0)
    assert data["i_vk_certificate"]["gap"] <= 1e-9
    assert data["pid"]["{12}"] == pytest.approx(1.0)
    assert data["names"] == ["X1", "X2", "Y"]


def test_csv_probabilities_with_header_and_symbols(tmp_path, capsys):
    f = tmp_path / "and.csv"
    f.write_text("# AND gate\na,b,out,p\nlo,lo,no,0.25\nlo,hi,no,0.25\nhi,lo,no,0.25\nhi,hi,yes,0.25\n")
    code, out, _ = run(capsys, str(f), "--json")
    data = json.loads(out)
    assert code == 0 and data["kind"] == "probabilities"
    assert data["names"] == ["a", "b", "out"]
    assert data["mutual_information"] == pytest.approx(info.mutual_information(info.gate("and")))
    assert data["s_vk"] == pytest.approx(0.5, abs=1e-9)


def test_csv_counts_give_estimates(tmp_path, capsys):
    f = tmp_path / "counts.csv"
    f.write_text("0,0,0,35\n0,1,1,25\n1,0,1,20\n1,1,0,25\n")
    code, out, _ = run(capsys, str(f), "--json", "--bootstrap", "30", "--seed", "3")
    data = json.loads(out)
    assert code == 0 and data["kind"] == "counts"
    assert data["estimates"]["mutual_information"]["n_samples"] == 105
    assert data["estimates"]["s_vk"]["n_bootstrap"] == 30
    code, text, _ = run(capsys, str(f), "--bootstrap", "30")
    assert "Estimates from 105 observations" in text


def test_samples_csv_and_npy_agree(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(300, 2))
    samples = np.column_stack([x, x[:, 0] ^ x[:, 1]])
    csv_path = tmp_path / "trials.csv"
    csv_path.write_text("n1,n2,stim\n" + "\n".join(",".join(map(str, r)) for r in samples) + "\n")
    npy_path = tmp_path / "trials.npy"
    np.save(npy_path, samples)
    _, out_csv, _ = run(capsys, str(csv_path), "--samples", "--json", "--bootstrap", "10")
    _, out_npy, _ = run(capsys, str(npy_path), "--samples", "--json", "--bootstrap", "10")
    a, b = json.loads(out_csv), json.loads(out_npy)
    assert a["names"] == ["n1", "n2", "stim"] and b["names"] == ["X1", "X2", "Y"]
    assert a["s_max"] == pytest.approx(b["s_max"]) and a["s_max"] > 0.9
    assert a["estimates"] == b["estimates"]


def test_npy_table_with_groups_and_base(tmp_path, capsys):
    f = tmp_path / "parity.npy"
    np.save(f, info.gate("parity3"))
    code, out, _ = run(capsys, str(f), "--predictors", "0,1", "X3", "--base", "e", "--json")
    data = json.loads(out)
    assert code == 0 and data["predictors"] == [[0, 1], [2]] and data["unit"] == "nats"
    assert data["s_max"] == pytest.approx(np.log(2))


def test_normalize_flag(tmp_path, capsys):
    f = tmp_path / "unnormalised.csv"
    f.write_text("0,0,0.5\n1,1,0.6\n")
    code, _, err = run(capsys, str(f))
    assert code == 2 and "sum to 1.1" in err and "--normalize" in err and err.count("\n") == 1
    code, out, _ = run(capsys, str(f), "--normalize", "--json")
    assert code == 0 and json.loads(out)["mutual_information"] > 0.99


@pytest.mark.parametrize(
    "content, suffix, extra, message",
    [
        ("0,0,0.5\n1,1,-0.5\n", ".csv", [], "line 2: weight -0.5 is negative"),
        ("0,0,0.5\n1,1,nan\n", ".csv", [], "line 2: weight 'nan' is not finite"),
        ("0,0,0.5\n1,1\n", ".csv", [], "line 2: expected 3 fields, got 2"),
        ("0,0,0.5\n0,0,0.5\n", ".csv", [], "line 2: outcome 0,0 repeats line 1"),
        (
            "0,0,1\n1,1,0\n0,0,1\n",
            ".csv",
            [],
            "line 3: outcome 0,0 repeats line 1; if each row is one trial, pass --samples",
        ),
        ("0,0,0.5\n1,1,abc\n", ".csv", [], "line 2: weight 'abc' is not a number"),
        ("0,1\n", ".csv", [], "at least 3 fields"),
        ("", ".csv", [], "no data rows"),
        ("0,1\n1,0.5\n", ".csv", ["--samples"], "line 2: sample symbol '0.5' is not an integer"),
    ],
)
def test_bad_csv_files(tmp_path, capsys, content, suffix, extra, message):
    f = tmp_path / f"bad{suffix}"
    f.write_text(content)
    code, out, err = run(capsys, str(f), *extra)
    assert code == 2 and out == ""
    assert message in err
    assert err.startswith("nsvae info: error:") and err.count("\n") == 1


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array([0.5, 0.5]), "rank >= 2"),
        (np.array([[0.5, np.nan], [0.25, 0.25]]), "NaN"),
        (np.array([[0.5, 0.6], [0.1, -0.2]]), "negative"),
        (np.zeros((2, 0)), "empty target"),
        (np.array([[0.5, 0.6], [0.1, 0.2]]), "--normalize"),
    ],
)
def test_bad_npy_tables(tmp_path, capsys, array, message):
    f = tmp_path / "bad.npy"
    np.save(f, array)
    code, _, err = run(capsys, str(f))
    assert code == 2 and message in err and err.count("\n") == 1


def test_missing_file_and_bad_options(tmp_path, capsys):
    code, _, err = run(capsys, str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "--example", "xor", "--predictors", "Z9")
    assert code == 2 and "neither a predictor name" in err
    code, _, err = run(capsys, "--example", "xor", "--base", "1")
    assert code == 2 and "--base" in err


def test_console_script_entry_point():
    # The installed module runs as `python -m nsvae` with the documented exit statuses.
    ok = subprocess.run([sys.executable, "-m", "nsvae", "info", "--example", "copy"], capture_output=True, text=True)
    assert ok.returncode == 0 and re.search(r"I\(X1,X2 ; Y\)\s+2\.000000", ok.stdout)
    bad = subprocess.run([sys.executable, "-m", "nsvae", "info", "/nonexistent.csv"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_miller_madow_on_the_command_line_falls_back_for_synergy(tmp_path, capsys):
    f = tmp_path / "counts.csv"
    f.write_text("0,0,0,35\n0,1,1,25\n1,0,1,20\n1,1,0,25\n")
    code, out, _ = run(capsys, str(f), "--json", "--correction", "miller-madow", "--bootstrap", "20")
    est = json.loads(out)["estimates"]
    assert code == 0
    assert est["mutual_information"]["correction"] == "miller-madow" and est["wms"]["correction"] == "miller-madow"
    assert est["s_max"]["correction"] == "quadratic" and est["s_vk"]["correction"] == "quadratic"
    # The bootstrap stream is the same as with the default correction.
    _, out_auto, _ = run(capsys, str(f), "--json", "--bootstrap", "20")
    assert json.loads(out_auto)["estimates"] == est


def test_bad_confidence_and_no_bootstrap(tmp_path, capsys):
    code, _, err = run(capsys, "--example", "xor", "--confidence", "7")
    assert code == 2 and "--confidence" in err
    f = tmp_path / "counts.csv"
    f.write_text("0,0,0,35\n0,1,1,25\n1,0,1,20\n1,1,0,25\n")
    code, out, _ = run(capsys, str(f), "--bootstrap", "0")
    assert code == 0 and "no bootstrap interval" in out and "-0.0000" not in out


def test_single_predictor_has_no_pid_section(tmp_path, capsys):
    f = tmp_path / "one.csv"
    f.write_text("0,0,0.4\n1,1,0.4\n1,0,0.2\n")
    code, out, _ = run(capsys, str(f))
    assert code == 0 and "PID" not in out and "1 predictors" not in out
