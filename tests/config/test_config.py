"""Configs: TOML round trips, presets, and errors that name the key and suggest the nearest one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nsvae.config import Config, apply_overrides, dumps, load_config, loads, parse_override, preset_names, toml_io
from nsvae.config.schema import SECTIONS, resolve_key, valid_keys
from nsvae.errors import UserError
from nsvae.objectives import METHODS

REPO = Path(__file__).resolve().parents[2]


def _changed_config() -> Config:
    """A config with a non-default value in every section (and awkward strings and floats)."""
    return apply_overrides(
        Config(),
        {
            "method": "factor_vae",
            "run.name": "a 'quoted' näme",
            "run.seed": 7,
            "run.device": "cuda:1",
            "run.deterministic": True,
            "data.seed": 11,
            "data.dataset": "celeba",
            "data.crop": "center",
            "data.crop_size": 140,
            "data.source": 'C:\\Users\\me "odd"\\img_align_celeba.zip',  # backslashes and quotes: TOML escapes them
            "data.channels": 3,
            "model.architecture": "conv_rgb",
            "model.channels": 3,
            "optim.lr": 3.3e-5,
            "optim.eps": 1e-12,
            "optim.eps_placement": "pytorch0.4",
            "common.likelihood": "gaussian",
            "log.every": 7,
            "log.tensorboard": False,
            "log.trackers": ["mlflow", "wandb"],
            "log.mlflow_uri": "sqlite:///C:/runs/mlflow.db",
            "nonsyn.omega": 0.85,
            "beta_vae.capacity": True,
            "factor_vae.gamma": 40,
            "beta_tcvae.estimator": "mss",
        },
    )


@pytest.mark.parametrize("config", [Config(), _changed_config()], ids=["defaults", "changed"])
def test_toml_round_trip_is_exact(config):
    text = dumps(config)
    again = loads(text)
    assert again == config
    assert dumps(again) == text


def test_changed_values_survive_the_round_trip():
    config = loads(dumps(_changed_config()))
    assert config.method == "factor_vae"
    assert config.run.name == "a 'quoted' näme" and config.data.source == 'C:\\Users\\me "odd"\\img_align_celeba.zip'
    assert config.optim.lr == 3.3e-5 and config.optim.eps == 1e-12
    assert isinstance(config.factor_vae.gamma, float) and config.factor_vae.gamma == 40.0
    assert config.data.seed == 11 and config.data_seed == 11
    assert Config().data.seed is None and Config().data_seed == Config().run.seed


def test_every_method_with_hyper_parameters_has_a_section():
    for method, (config_cls, _) in METHODS.items():
        if dataclasses.fields(config_cls):
            assert SECTIONS[method] is config_cls
        assert Config(method=method).method_config() == config_cls()


def test_presets_load_validate_and_round_trip():
    names = preset_names()
    expected = {
        "nonsyn", "nonsyn-1.2m", "vae", "beta-vae", "factor-vae", "factor-vae-kim-mnih", "beta-tcvae",
        "celeba-nonsyn", "chairs-nonsyn",
    }  # fmt: skip
    assert expected <= set(names)
    assert {f"quick-{n}" for n in expected - {"nonsyn-1.2m"}} <= set(names)
    for name in names:
        config = load_config(name)
        assert config.run.name == name
        assert loads(dumps(config)) == config


def test_presets_hold_the_original_settings():
    readme = load_config("nonsyn")
    assert (readme.method, readme.nonsyn.alpha, readme.nonsyn.omega) == ("nonsyn", 5.0, 0.9)
    assert (readme.run.steps, readme.data.batch_size, readme.optim.lr, readme.model.z_dim) == (149_760, 64, 1e-4, 10)
    assert load_config("nonsyn-1.2m").run.steps == 1_198_080
    assert load_config("beta-vae").beta_vae.beta == 4.0
    assert load_config("factor-vae").factor_vae.gamma == 6.4
    kim = load_config("factor-vae-kim-mnih")
    assert (kim.factor_vae.gamma, kim.factor_vae.d_layers, kim.factor_vae.d_width) == (40.0, 6, 1000)
    assert (kim.factor_vae.d_slope, kim.run.steps) == (0.2, 300_000)
    for name in ("factor-vae-kim-mnih", "quick-factor-vae-kim-mnih"):  # disentanglement_lib's network, as named
        assert load_config(name).model.architecture == "dlib_conv"
    tcvae = load_config("beta-tcvae").beta_tcvae
    assert (tcvae.beta, tcvae.estimator) == (6.0, "mws")  # Chen et al.'s default estimator (no --mss)
    celeba = load_config("celeba-nonsyn")
    assert (celeba.data.dataset, celeba.model.architecture, celeba.model.channels) == ("celeba", "conv_rgb", 3)
    assert celeba.common.likelihood == "gaussian"
    assert load_config("chairs-nonsyn").data.dataset == "chairs"
    for name in preset_names():
        if name.startswith("quick-"):
            assert load_config(name).run.steps <= 1500


def test_the_presets_live_in_the_package_only():
    """One truth: no second copy of the presets in the repository (nsvae config copies one out)."""
    assert not (REPO / "configs").exists()


def test_load_config_from_a_file_and_by_name(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('method = "vae"\n[run]\nsteps = 3\n', encoding="utf-8")
    config = load_config(path)
    assert (config.method, config.run.steps, config.run.name) == ("vae", 3, "mine")
    assert load_config(str(path)) == config
    with pytest.raises(UserError, match=r"no config file or preset named 'quick-nonsin'; did you mean 'quick-nonsyn'"):
        load_config("quick-nonsin")
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "text, key, suggestion",
    [
        ("[nonsyn]\nalpah = 3", "nonsyn.alpah", "nonsyn.alpha"),
        ("[run]\nalpha = 3", "run.alpha", "nonsyn.alpha"),
        ('methd = "vae"', "methd", "method"),
        ("[rnu]\nseed = 1", "rnu", "run"),
        ("[data]\nbatchsize = 32", "data.batchsize", "data.batch_size"),
        ("[log]\ncheckpoint_evry = 3", "log.checkpoint_evry", "log.checkpoint_every"),
    ],
)
def test_unknown_keys_name_the_key_and_the_nearest(text, key, suggestion):
    with pytest.raises(UserError) as info:
        loads(text, where="x.toml")
    message = str(info.value)
    assert f"unknown config key {key!r} in x.toml; did you mean {suggestion!r}?" == message


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[data]\nbatch_size = "64"', "config key 'data.batch_size' must be an integer, got '64' (a string)"),
        ("[run]\nsteps = 1.5", "config key 'run.steps' must be an integer, got 1.5 (a number)"),
        ("[run]\ndeterministic = 1", "config key 'run.deterministic' must be true or false"),
        ('method = "factorvae"', "did you mean 'factor_vae'?"),
        ('[model]\narchitecture = "conv_rbg"', "'model.architecture' must be one of conv, conv_rgb, dlib_conv, mlp"),
        ("[nonsyn]\nomega = 1.5", "config key 'nonsyn.omega': omega must be in (0, 1), got 1.5"),
        ('[run]\ndevice = "gpu"', "config key 'run.device': device must be auto, cpu, cuda or cuda:N"),
        ("[run]\nsteps = 0", "config key 'run.steps'"),
        ('[data]\ndataset = "dsprite"', "config key 'data.dataset' must be one of"),
        ("run = 3", "config key 'run' must be a table"),
        ("[run\nsteps = 3", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(text, fragment):
    with pytest.raises(UserError) as info:
        loads(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_image_options_on_dsprites_are_refused():
    config = apply_overrides(Config(), {"data.crop": "center"})
    with pytest.raises(UserError, match="apply to image datasets"):
        config.data.load_options()
    assert Config().data.load_options() == {"origin": "auto"}
    celeba = apply_overrides(Config(), {"data.dataset": "celeba", "data.channels": 3})
    assert celeba.data.load_options() == {"channels": 3}


def test_set_values_are_read_as_toml_scalars():
    assert parse_override("nonsyn.alpha=2.5") == ("nonsyn.alpha", 2.5)
    assert parse_override("run.steps = 10") == ("run.steps", 10)
    assert parse_override("log.tensorboard=false") == ("log.tensorboard", False)
    assert parse_override("method=vae") == ("method", "vae")  # bare words are strings
    assert parse_override('run.name="a=b"') == ("run.name", "a=b")
    assert parse_override("optim.lr=1e-3") == ("optim.lr", 1e-3)
    for bad in ("nonsyn.alpha", "=3", ""):
        with pytest.raises(UserError, match="--set expects KEY=VALUE"):
            parse_override(bad)
    config = apply_overrides(Config(), ["nonsyn.alpha=2.5", "run.steps=10", "method=vae", "factor_vae.gamma=7"])
    assert (config.nonsyn.alpha, config.run.steps, config.method, config.factor_vae.gamma) == (2.5, 10, "vae", 7.0)
    with pytest.raises(UserError, match="'run.steps' must be an integer"):
        apply_overrides(Config(), ["run.steps=many"])
    with pytest.raises(UserError, match="did you mean 'nonsyn.omega'"):
        apply_overrides(Config(), ["nonsyn.omgea=0.5"])


def test_short_and_underscore_keys():
    assert resolve_key("steps") == "run.steps"
    assert resolve_key("nonsyn__alpha") == "nonsyn.alpha"
    assert resolve_key("z_dim") == "model.z_dim"
    with pytest.raises(UserError, match="'seed' is ambiguous; write one of run.seed, data.seed"):
        resolve_key("seed")
    assert "method" in valid_keys() and "beta_tcvae.estimator" in valid_keys()


@pytest.mark.parametrize("value", [0.1, 1e-8, 1e16, 3.0, -2.5e-300, float("inf"), float("-inf"), 5e-324])
def test_float_formatting_round_trips(value):
    assert toml_io.loads(f"v = {toml_io.format_value(value)}")["v"] == value


def test_writer_rejects_what_it_cannot_write():
    assert toml_io.format_value(["mlflow", "wandb"]) == '["mlflow", "wandb"]'  # flat lists (log.trackers) are written
    assert toml_io.format_value(()) == "[]"
    with pytest.raises(TypeError):
        toml_io.format_value([[1], 2])
    with pytest.raises(TypeError):
        toml_io.format_value(object())
    assert toml_io.dumps({"a": None, "t": {"b": None, "c": 1}}) == "\n[t]\nc = 1\n".lstrip("\n")


def test_the_config_names_live_in_nsvae_config_alone():
    """The compatibility re-export from ``nsvae.experiments`` is gone (issue 26, point 7; CHANGELOG): the config's
    public names import from ``nsvae.config`` and are one object there."""
    import nsvae.config
    import nsvae.experiments

    assert {"Config", "load_config", "apply_overrides", "dumps", "loads"} <= set(nsvae.config.__all__)
    for name in nsvae.config.__all__:
        assert getattr(nsvae.config, name) is not None
        assert not hasattr(nsvae.experiments, name), name


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 64, 64), None),
        ((1, 32, 32), "the networks take 64x64 images; dsprites has 32x32"),
        ((3, 64, 64), r"dsprites images have 3 channel\(s\) but model.channels = 1"),
    ],
)
def test_open_dataset_opens_the_configs_data_and_checks_it_against_the_model(monkeypatch, shape, message):
    from nsvae import data
    from nsvae.config import open_dataset

    class Fake:
        observation_shape = shape

    calls = []
    monkeypatch.setattr(data, "load", lambda name, **options: calls.append((name, options)) or Fake())
    config = apply_overrides(Config(), {"data.origin": "generated"})
    if message is None:
        assert isinstance(open_dataset(config, progress=True), Fake)
    else:
        with pytest.raises(UserError, match=message):
            open_dataset(config)
    assert calls == [("dsprites", {"source": None, "progress": message is None, "origin": "generated"})]
