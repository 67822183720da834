"""Search-space parsing, validation against the base config, and applying a trial's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from raylm import config as C
from raylm.config import ConfigError
from raylm.root import RootConfig
from raylm.tune.config import TuneConfig, apply_values, parse_space

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base() -> dict:
    return C.to_dict(C.load(RootConfig, REPO / "configs" / "tiny.yaml"))


def test_all_samplers_parse_and_yaml_strings_are_coerced(base):
    space = {"train.optim.lr": {"loguniform": ["1e-4", "3e-3"]},  # PyYAML reads 1e-4 as a string
             "train.optim.weight_decay": {"uniform": [0, 0.2]},
             "model.dropout": {"choice": [0.0, 0.1]},
             "train.batch_size": {"grid": [8, 16]},
             "train.schedule.warmup_steps": {"uniform": [0.5, 10]}}
    params = {p.key: p for p in parse_space(space, base)}
    assert params["train.optim.lr"].args == [1e-4, 3e-3] and not params["train.optim.lr"].integer
    assert params["train.batch_size"].sampler == "grid" and params["train.batch_size"].args == [8, 16]
    # an int field swept by a range samples integers, bounds rounded inwards
    assert params["train.schedule.warmup_steps"].integer and params["train.schedule.warmup_steps"].args == [1, 10]


def test_space_in_yaml_goes_through_the_strict_loader(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tune:\n  space:\n    train.optim.lr: {loguniform: [1e-4, 3e-3]}\n  scheduler: median\n")
    cfg = C.load(RootConfig, p)
    assert cfg.tune.scheduler == "median" and cfg.tune.space["train.optim.lr"] == {"loguniform": ["1e-4", "3e-3"]}


@pytest.mark.parametrize("spec, needle", [
    ({"normal": [0, 1]}, "unknown sampler 'normal'"),
    ({"uniform": [1, 0]}, "need low < high"),
    ({"loguniform": [0, 1]}, "bounds must be > 0"),
    ({"uniform": [0, 1, 2]}, "expected [low, high]"),
    ({"uniform": ["a", 1]}, "bounds must be numbers"),
    ({"choice": []}, "non-empty list"),
    ({"choice": [1], "grid": [2]}, "expected one sampler"),
])
def test_bad_sampler_is_an_error_naming_the_key(spec, needle):
    with pytest.raises(ValueError) as e:
        TuneConfig(space={"train.optim.lr": spec})
    assert "tune.space.train.optim.lr" in str(e.value) and needle in str(e.value)


def test_bad_sampler_through_the_loader_names_the_key():
    with pytest.raises(ConfigError, match="tune.space.model.dropout: unknown sampler 'gauss'"):
        C.from_dict(RootConfig, {"tune": {"space": {"model.dropout": {"gauss": [0, 1]}}}})


@pytest.mark.parametrize("key, spec, needle", [
    ("train.optim.lrr", {"loguniform": [1e-4, 1e-2]}, "unknown key 'train.optim.lrr'"),
    ("modle.dropout", {"choice": [0.1]}, "unknown key 'modle'"),
    ("train.optim", {"choice": [1]}, "is a section"),
    ("train.batch_size", {"choice": [8, "big"]}, "expected an integer"),
    ("train.optim.name", {"choice": ["adamw", "lion"]}, "'lion' is not valid"),
    ("train.schedule.warmup_steps", {"uniform": [0, 100]}, "exceeds max_steps"),  # tiny: max_steps 30
    ("train.optim.lr", {"uniform": [-1, 1]}, "lr must be > 0"),
    ("out", {"choice": ["x"]}, "cannot change out"),
    ("tune.num_samples", {"choice": [2]}, "cannot change tune"),
])
def test_bad_path_or_value_is_an_error_naming_the_key(base, key, spec, needle):
    with pytest.raises(ValueError) as e:
        parse_space({key: spec}, base)
    assert f"tune.space.{key}" in str(e.value) and needle in str(e.value)


def test_empty_space_is_an_error(base):
    with pytest.raises(ValueError, match="tune.space is empty"):
        parse_space({}, base)


def test_apply_values_rebuilds_strictly_and_leaves_the_base_alone(base):
    cfg = apply_values(base, {"train.optim.lr": 2e-3, "model.dropout": 0.1, "train.batch_size": 16})
    assert isinstance(cfg, RootConfig)
    assert (cfg.train.optim.lr, cfg.model.dropout, cfg.train.batch_size) == (2e-3, 0.1, 16)
    assert cfg.train.optim.weight_decay == base["train"]["optim"]["weight_decay"]  # untouched keys kept
    assert base["train"]["batch_size"] == 8
    with pytest.raises(ConfigError, match="train.optim.beta9"):
        apply_values(base, {"train.optim.beta9": 0.5})


def test_tune_config_cross_field_checks():
    with pytest.raises(ValueError, match="optuna cannot expand grid"):
        TuneConfig(space={"model.dropout": {"grid": [0.0, 0.1]}}, searcher="optuna")
    with pytest.raises(ValueError, match="reduction_factor"):
        TuneConfig(reduction_factor=1)
    with pytest.raises(ValueError, match="num_samples"):
        TuneConfig(num_samples=0)


@pytest.mark.parametrize("name", ["tune_tiny.yaml", "tune_quickstart.yaml"])
def test_shipped_tune_configs_load_and_their_spaces_validate(name):
    cfg = C.load(RootConfig, REPO / "configs" / name)
    params = parse_space(cfg.tune.space, C.to_dict(cfg))
    assert {p.key for p in params} >= {"train.optim.lr", "train.optim.weight_decay", "model.dropout"}
    assert cfg.train.num_workers >= 1  # each trial is a Ray Train run
    assert cfg.train.max_steps % cfg.train.eval_interval == 0  # ASHA's last rung sees a val_loss
