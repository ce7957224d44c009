"""Bad input over every command and file type (issue 16, "The tests that keep it so"): each case exits with status
2, prints one line that names the option, key or file at fault, and changes no file that existed before."""

from __future__ import annotations

import hashlib
import math
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.config.schema import SECTIONS, _field_types

# -- the cases ------------------------------------------------------------------------------------------------
# Each case: (argv with {W} for the workspace and {RUN} for a trained run, the text its message must contain).


def _config_key_cases() -> list[tuple[list[str], str]]:
    """`train --set KEY=VALUE` with a value of the wrong kind for every config key."""
    cases = []
    bad = {
        int: ["abc", "2.5", "true", "[1]"],
        float: ["nan", "inf", "-inf", "abc", "true"],
        bool: ["5", "abc", "1.5"],
        str: ["5", "true", "1.5"],
    }
    for section, cls in SECTIONS.items():
        for name, tp in _field_types(cls).items():
            base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
            for value in bad[base]:
                key = f"{section}.{name}"
                cases.append((["train", "quick-vae", "--set", f"{key}={value}", "--out", "{W}/new"], key))
    return cases


RANGES = [
    ("run.seed=-1", "run.seed"),
    ("run.seed=18446744073709551616", "run.seed"),
    ("data.seed=-3", "data.seed"),
    ("run.steps=0", "run.steps"),
    ("run.threads=-1", "run.threads"),
    ("run.device='tpu'", "run.device"),
    ("run.device='cuda:x'", "run.device"),
    ("run.name='a/b'", "run.name"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.channels=2", "data.channels"),
    ("data.origin='nope'", "data.origin"),
    ("data.dataset='mnist'", "data.dataset"),
    ("optim.eps=0", "optim.eps"),
    ("optim.eps=-1e-8", "optim.eps"),
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=-1e-4", "optim.lr"),
    ("optim.beta1=1", "optim.beta1"),
    ("optim.beta2=-0.1", "optim.beta2"),
    ("optim.eps_placement='old'", "optim.eps_placement"),
    ("common.proxy_omega=2", "common.proxy_omega"),
    ("common.proxy_omega=0", "common.proxy_omega"),
    ("common.likelihood='poisson'", "common.likelihood"),
    ("factor_vae.d_lr=-1e-4", "factor_vae.d_lr"),
    ("factor_vae.d_beta1=2", "factor_vae.d_beta1"),
    ("factor_vae.d_layers=0", "factor_vae.d_layers"),
    ("factor_vae.gamma=-1", "factor_vae.gamma"),
    ("beta_tcvae.beta=-1", "beta_tcvae.beta"),
    ("beta_tcvae.alpha=-2", "beta_tcvae.alpha"),
    ("beta_tcvae.estimator='x'", "beta_tcvae.estimator"),
    ("beta_vae.c_steps=0", "beta_vae.c_steps"),
    ("beta_vae.c_max=-1", "beta_vae.c_max"),
    ("nonsyn.alpha=-1", "nonsyn.alpha"),
    ("nonsyn.omega=1", "nonsyn.omega"),
    ("nonsyn.selection='best'", "nonsyn.selection"),
    ("model.z_dim=0", "model.z_dim"),
    ("model.channels=2", "model.channels"),
    ("model.architecture='resnet'", "model.architecture"),
    ("log.every=0", "log.every"),
    ("log.keep_checkpoints=0", "log.keep_checkpoints"),
    ("log.traversal_every=-1", "log.traversal_every"),
    ("eval.every=-1", "eval.every"),
    ("eval.pool=5", "eval.pool"),
    ("method='gan'", "method"),
    ("nonsyn.alhpa=5", "nonsyn.alpha"),  # a misspelling: the nearest key is named
    ("run.alpha=5", "nonsyn.alpha"),
    ("novalue", "--set"),
]

TRAIN = [
    (["train"], "CONFIG"),
    (["train", "no-such-preset"], "no-such-preset"),
    (["train", "{W}/missing.toml"], "missing.toml"),
    (["train", "{W}/broken.toml"], "broken.toml"),
    (["train", "{W}/unknown-key.toml"], "run.sead"),
    (["train", "{W}/not-utf8.toml"], "not-utf8.toml"),
    (["train", "{W}/table-as-value.toml"], "run"),
    (["train", "quick-vae", "--device", "tpu"], "run.device"),
    (["train", "quick-vae", "--device", "cuda:x"], "run.device"),
    (["train", "quick-vae", "--steps", "0"], "run.steps"),
    (["train", "quick-vae", "--steps", "-5"], "run.steps"),
    (["train", "--resume", "{W}/nothing"], "nothing"),
    (["train", "--resume", "{RUN}", "--set", "run.seed=1"], "--resume"),
    (["train", "--resume", "{RUN}", "--steps", "3"], "--steps"),
    (["train", "--resume", "{RUN}"], "--steps"),
    (["train", "quick-vae", "--out", "{RUN}"], "--resume"),
    (["train", "quick-vae", "--out", "{W}/a-file.txt"], "a-file.txt"),
    (["train", "quick-vae", "--out", "{W}/stray"], "no config.toml"),
    (["train", "--resume", "{W}/stray"], "stray"),
]

EVALUATE = [
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_bins=nan"], "mig.num_bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_bins=abc"], "mig.num_bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_bins=2.5"], "mig.num_bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_bins=0"], "mig.num_bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_bins=-3"], "mig.num_bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.num_train=true"], "mig.num_train"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig.bins=20"], "bins"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--set", "mig=20"], "--set"),
    (["evaluate", "{RUN}", "--metrics", "factor_vae_score", "--set", "factor_vae_score.batch_size=0"], "batch_size"),
    (["evaluate", "{RUN}", "--metrics", "factor_vae_score", "--set", "factor_vae_score.num_eval=-1"], "num_eval"),
    (
        ["evaluate", "{RUN}", "--metrics", "factor_vae_score", "--set", "factor_vae_score.prune_threshold=nan"],
        "prune_threshold",
    ),
    (["evaluate", "{RUN}", "--metrics", "active_units", "--set", "active_units.threshold=-1"], "threshold"),
    (["evaluate", "{RUN}", "--metrics", "synergy", "--set", "synergy.num_samples=0"], "num_samples"),
    (["evaluate", "{RUN}", "--metrics", "dci", "--set", "dci.num_test=1e400"], "num_test"),
    (["evaluate", "{RUN}", "--metrics", "sap", "--set", "sap.continuous_factors=3"], "continuous_factors"),
    (["evaluate", "{RUN}", "--metrics", "nonesuch"], "nonesuch"),
    (["evaluate", "{RUN}", "--device", "tpu"], "device"),
    (["evaluate", "{RUN}", "--metrics", "mig", "--step", "999"], "999"),
    (["evaluate", "{W}/nothing"], "nothing"),
    (["evaluate", "{W}/stray"], "stray"),
]

PLOT = [
    (["plot", "curves", "{RUN}", "-o", "{W}/c.png", "--dpi", "100000"], "--dpi"),
    (["plot", "curves", "{RUN}", "-o", "{W}/c.png", "--dpi", "0"], "--dpi"),
    (["plot", "curves", "{RUN}", "-o", "{W}/c.png", "--dpi", "-10"], "--dpi"),
    (["plot", "curves", "{RUN}", "-o", "{W}/c.jpg"], "-o"),
    (["plot", "curves", "{RUN}", "-o", "{W}/c.gif"], "-o"),
    (["plot", "curves", "{W}/nothing", "-o", "{W}/c.png"], "nothing"),
    (["plot", "curves", "{RUN}", "{RUN}", "-o", "{W}/c.png"], "one run"),
    (["plot", "mean-activation", "{RUN}", "-o", "{W}/m.png", "--samples", "-1"], "--samples"),
    (["plot", "curves", "{RUN}", "-o", "{W}/c.png", "--metrics", "mig"], "--metrics"),
    (["plot", "traversal", "{RUN}", "-o", "{W}/t.png", "--step", "999"], "999"),
]

INFO = [
    (["info", "{W}/complex.npy"], "complex"),
    (["info", "{W}/object.npy"], "object.npy"),
    (["info", "{W}/huge.npy"], "huge.npy"),
    (["info", "{W}/overflow.npy"], "2**62"),
    (["info", "{W}/overflow.csv"], "2**62"),
    (["info", "{W}/negative.npy"], "negative"),
    (["info", "{W}/rank1.npy"], "rank1.npy"),
    (["info", "{W}/zeros.npy"], "zeros.npy"),
    (["info", "{W}/nan.npy"], "nan.npy"),
    (["info", "{W}/truncated.npy"], "truncated.npy"),
    (["info", "{W}/garbage.npy"], "garbage.npy"),
    (["info", "{W}/badsum.csv"], "--normalize"),
    (["info", "{W}/ragged.csv"], "ragged.csv"),
    (["info", "{W}/repeat.csv"], "repeat"),
    (["info", "{W}/missing.csv"], "missing.csv"),
    (["info", "{W}"], "directory"),
    (["info", "{W}/samples1d.npy", "--samples"], "samples"),
    (["info", "--example", "xor", "--base", "-2"], "--base"),
    (["info", "--example", "xor", "--base", "abc"], "--base"),
    (["info", "--example", "xor", "--confidence", "2"], "--confidence"),
    (["info", "{W}/counts.csv", "--bootstrap", "-1"], "--bootstrap"),
    (["info", "--example", "xor", "--predictors", "0", "5"], "5"),
    (["info", "--example", "xor", "--predictors", "x"], "x"),
    (["info"], "--example"),
]

DATA = [
    (["data", "prepare", "mnist", "--cache-dir", "{W}/cache"], "mnist"),
    (["data", "prepare", "dsprites", "--workers", "-1", "--cache-dir", "{W}/cache"], "--workers"),
    (["data", "prepare", "dsprites", "--from", "{W}/missing.npz", "--cache-dir", "{W}/cache"], "missing.npz"),
    (["data", "prepare", "dsprites", "--from", "{W}/garbage.npy", "--cache-dir", "{W}/cache"], "garbage.npy"),
    (["data", "prepare", "dsprites", "--origin", "official", "--cache-dir", "{W}/cache"], "--from"),
    (["data", "prepare", "celeba", "--cache-dir", "{W}/cache"], "--from"),
    (["data", "prepare", "folder", "--from", "{W}/missing-dir", "--cache-dir", "{W}/cache"], "missing-dir"),
    (["data", "prepare", "folder", "--from", "{W}/empty-dir", "--cache-dir", "{W}/cache"], "empty-dir"),
    (["data", "prepare", "folder", "--from", "{W}/empty-dir", "--workers", "-2", "--cache-dir", "{W}/c"], "workers"),
    (["data", "prepare", "dsprites", "--cache-dir", "{W}/a-file.txt/sub"], "a-file.txt"),
    (["data", "show", "dsprites", "-o", "{W}/x.jpg"], "-o"),
    (["data", "show", "dsprites", "-o", "{W}/x.png", "--columns", "0"], "--columns"),
    (["data", "show", "mnist", "-o", "{W}/x.png", "--cache-dir", "{W}/cache"], "mnist"),
]

SWEEP = [
    (["sweep"], "SWEEP"),
    (["sweep", "{W}/sweep.toml", "--workers", "0", "--out", "{W}/sw"], "--workers"),
    (["sweep", "{W}/sweep.toml", "--workers", "-1", "--out", "{W}/sw"], "--workers"),
    (["sweep", "{W}/sweep.toml", "--device", "tpu", "--out", "{W}/sw"], "--device"),
    (["sweep", "{W}/missing-sweep.toml"], "missing-sweep"),
    (["sweep", "no-such-sweep-preset"], "no-such-sweep-preset"),
    (["sweep", "{W}/sweep-bad-set.toml", "--dry-run", "--out", "{W}/sw"], "optim.eps"),
    (["sweep", "{W}/sweep-bad-grid.toml", "--dry-run", "--out", "{W}/sw"], "nonsyn.alpha"),
    (["sweep", "{W}/sweep-bad-eval.toml", "--dry-run", "--out", "{W}/sw"], "mig.num_bins"),
    (["sweep", "{W}/sweep-bad-eval2.toml", "--dry-run", "--out", "{W}/sw"], "batch_size"),
    (["sweep", "{W}/sweep-unknown.toml", "--dry-run", "--out", "{W}/sw"], "gird"),
    (["sweep", "{W}/sweep.toml", "--only", "nonesuch", "--out", "{W}/sw"], "nonesuch"),
    (["sweep", "{W}/broken.toml", "--dry-run"], "broken.toml"),
]

#: Round 3 (issue 29): names that escape their directories, directories nsvae did not write, finished runs without
#: checkpoints, wrong-shape files, sizes that would exhaust memory.
ROUND3 = [
    (["sweep", "{W}/sweep-dotdot.toml", "--dry-run"], "'..'"),
    (["study", "{W}/sweep-dotdot.toml", "--dry-run"], "'..'"),
    (["sweep", "{W}/sweep-inf-cpus.toml", "--dry-run", "--out", "{W}/sw"], "cpus"),
    (["train", "quick-vae", "--out", "{W}/foreign", "--steps", "2"], "foreign"),
    (["train", "--resume", "{W}/finished", "--steps", "9"], "finished"),
    (["results", "{W}/bad-sweep-json"], "sweep.json"),
    (["info", "{W}/wide.csv"], "--max-cells"),
    (["info", "{W}/counts.csv", "--max-cells", "0"], "--max-cells"),
    (["train", "quick-vae", "--set", "run.name=..", "--out", "{W}/new"], "run.name"),
]

OTHERS = [
    (["results", "{W}/nothing", "--digits", "-3"], "--digits"),
    (["results", "{W}/nothing", "--digits", "40"], "--digits"),
    (["results", "{W}/nothing"], "nothing"),
    (["report", "{W}/nothing"], "nothing"),
    (["report", "{RUN}", "-o", "{W}/r.txt"], "-o"),
]

CASES = (
    _config_key_cases()
    + [(["train", "quick-vae", "--set", s, "--out", "{W}/new"], k) for s, k in RANGES]
    + TRAIN
    + EVALUATE
    + PLOT
    + INFO
    + DATA
    + SWEEP
    + ROUND3
    + OTHERS
)

SWEEP_TEXT = """name = "tiny"
[base]
config = "quick-vae"
[set]
"run.steps" = 2
SET
[[runs]]
grid = GRID
[evaluation]
EVAL
"""


def _sweep(path: Path, set_: str = "", grid: str = '{ "run.seed" = [0, 1] }', eval_: str = "enabled = false") -> None:
    path.write_text(SWEEP_TEXT.replace("SET", set_).replace("GRID", grid).replace("EVAL", eval_), encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, dsprites):
    """A workspace with a trained tiny run and one file of every bad kind."""
    from nsvae.train import start
    from tests.train.conftest import tiny_config

    w = tmp_path_factory.mktemp("bad-input")
    run = start(tiny_config("vae", **{"run.steps": 5}), w / "run")
    (w / "broken.toml").write_text("method = \n[run\n", encoding="utf-8")
    (w / "unknown-key.toml").write_text('method = "vae"\n[run]\nsead = 3\n', encoding="utf-8")
    (w / "not-utf8.toml").write_bytes(b'method = "vae"\n# \xff\xfe\n')
    (w / "table-as-value.toml").write_text('method = "vae"\nrun = 5\n', encoding="utf-8")
    (w / "a-file.txt").write_text("x", encoding="utf-8")
    (w / "stray" / "checkpoints").mkdir(parents=True)
    (w / "stray" / "checkpoints" / "step_0000001.pt").write_bytes(b"not mine")
    (w / "empty-dir").mkdir()
    np.save(w / "complex.npy", np.ones((2, 2), complex))
    np.save(w / "object.npy", np.array([[{}, {}], [{}, {}]], dtype=object), allow_pickle=True)
    huge = np.lib.format.open_memmap(w / "huge.npy", mode="w+", dtype=np.float64, shape=(2**14, 2**14 + 8))
    del huge  # a sparse 2 GiB file
    np.save(w / "overflow.npy", np.array([[2**62, 2**62], [2**62, 1]], dtype=np.int64))
    (w / "overflow.csv").write_text("x,y,p\n0,0,9223372036854775807\n1,1,9223372036854775807\n", encoding="utf-8")
    np.save(w / "negative.npy", np.array([[3, -1], [1, 1]]))
    np.save(w / "rank1.npy", np.array([0.5, 0.5]))
    np.save(w / "zeros.npy", np.zeros((2, 2), dtype=np.int64))
    np.save(w / "nan.npy", np.array([[0.5, math.nan], [0.25, 0.25]]))
    np.save(w / "samples1d.npy", np.array([0, 1, 1, 0]))
    np.save(w / "truncated.npy", np.ones((50, 50)))
    (w / "truncated.npy").write_bytes((w / "truncated.npy").read_bytes()[:300])
    (w / "garbage.npy").write_bytes(b"\x00garbage" * 10)
    (w / "badsum.csv").write_text("x,y,p\n0,0,0.5\n1,1,0.2\n", encoding="utf-8")
    (w / "ragged.csv").write_text("x,y,p\n0,0,0.5\n1,0.5\n", encoding="utf-8")
    (w / "repeat.csv").write_text("x,y,p\n0,0,2\n0,0,3\n", encoding="utf-8")
    (w / "counts.csv").write_text("x,y,p\n0,0,2\n1,1,3\n", encoding="utf-8")
    _sweep(w / "sweep.toml")
    _sweep(w / "sweep-bad-set.toml", set_='"optim.eps" = 0.0')
    _sweep(w / "sweep-bad-grid.toml", grid='{ "nonsyn.alpha" = [1.0, nan] }')
    _sweep(w / "sweep-bad-eval.toml", eval_='metrics = ["mig"]\noverrides = { mig = { num_bins = 0 } }')
    _sweep(w / "sweep-bad-eval2.toml", eval_="overrides = { factor_vae_score = { batch_size = 0 } }")
    (w / "sweep-unknown.toml").write_text('name = "x"\n[base]\nconfig = "quick-vae"\n[[runs]]\ngird = {}\n')
    (w / "sweep-dotdot.toml").write_text('name = ".."\n[base]\nconfig = "quick-vae"\n[set]\n"eval.every" = 2\n')
    (w / "sweep-inf-cpus.toml").write_text('name = "x"\n[base]\nconfig = "quick-vae"\n[resources]\ncpus = inf\n')
    (w / "foreign").mkdir()
    (w / "foreign" / "config.toml").write_text("[tool.black]\nline-length = 100\n", encoding="utf-8")
    shutil.copytree(run.path, w / "finished")
    shutil.rmtree(w / "finished" / "checkpoints")
    (w / "bad-sweep-json").mkdir()
    (w / "bad-sweep-json" / "sweep.json").write_text("[]", encoding="utf-8")
    row = ",".join(["0"] * 28 + ["0.5"]) + "\n" + ",".join(["1"] * 28 + ["0.5"]) + "\n"
    (w / "wide.csv").write_text(row, encoding="utf-8")  # 2 rows, 2**28 cells
    return w, run.path


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "huge.npy":
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[str(path.relative_to(root))] = "dir"
    return out


def test_there_are_at_least_200_cases():
    assert len(CASES) >= 200


@pytest.mark.parametrize(("argv", "needle"), CASES, ids=[" ".join(a)[:80] for a, _ in CASES])
def test_bad_input_exits_2_with_one_line_naming_it_and_changes_nothing(workspace, argv, needle, capsys):
    w, run = workspace
    argv = [a.replace("{W}", str(w)).replace("{RUN}", str(run)) for a in argv]
    before = _snapshot(w)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert lines, "no message"
    message = lines[-1]
    assert "Traceback" not in err
    if not err.startswith("usage:"):  # argparse prints its usage, then its one error line
        assert len(lines) == 1, err
    assert needle.replace("{W}", str(w)) in message, message
    after = _snapshot(w)
    # Nothing that existed changed (lock files record their last holder: bookkeeping, not data); nothing new but
    # directories and lock files (a cache directory made before the error was found)
    assert {k: v for k, v in before.items() if not k.endswith(".lock")} == {
        k: v for k, v in after.items() if k in before and not k.endswith(".lock")
    }
    assert all(after[k] == "dir" or k.endswith(".lock") for k in set(after) - set(before))
