"""Cross-field checks of the model and training configs, through the same strict loader as the CLI."""

from __future__ import annotations

import pytest

from raylm import config as C
from raylm.config import ConfigError
from raylm.model.gpt import SIZES, GPTConfig
from raylm.root import RootConfig


def load(*overrides: str) -> RootConfig:
    return C.load(RootConfig, None, list(overrides))


def test_explicit_model_fields_win_over_size():
    cfg = load("model.size=tiny", "model.n_layer=8").model
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == (8, SIZES["tiny"]["n_head"], SIZES["tiny"]["n_embd"])
    plain = load("model.size=tiny").model
    assert (plain.n_layer, plain.n_head, plain.n_embd) == (2, 2, 64)
    default = load().model  # no size: the default size's fields
    assert (default.n_layer, default.n_head, default.n_embd) == (4, 4, 128)


def test_resolved_model_config_reloads_to_the_same_model():
    cfg = load("model.size=small", "model.n_layer=3")
    again = C.from_dict(RootConfig, C.to_dict(cfg))
    assert again.model == cfg.model and again.model.n_layer == 3 and again.model.n_embd == 384


@pytest.mark.parametrize("override, message", [
    ("model.n_head=0", "n_head must be >= 1"),
    ("model.n_embd=-64", "n_embd must be >= 1"),
    ("model.n_layer=-1", "n_layer must be >= 1"),
    ("model.n_embd=130", r"n_embd \(130\) must be divisible by n_head \(4\)"),
    ("model.vocab_size=-5", "vocab_size must be >= 0"),
    ("model.size=huge", "size 'huge' unknown"),
])
def test_bad_model_shapes_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message) as e:
        load(override)
    assert str(e.value).startswith("model:")


def test_with_vocab_takes_or_checks_the_tokenizer_vocabulary():
    assert GPTConfig(size="tiny").with_vocab(300, "x").vocab_size == 300
    assert GPTConfig(size="tiny", vocab_size=512).with_vocab(300, "x").vocab_size == 512
    with pytest.raises(ValueError, match="smaller than the 600 tokens of tok.json"):
        GPTConfig(size="tiny", vocab_size=512).with_vocab(600, "tok.json")


def test_min_lr_above_lr_is_refused_unless_constant():
    with pytest.raises(ConfigError, match=r"schedule.min_lr \(0.01\) exceeds optim.lr \(0.001\)"):
        load("train.optim.lr=1e-3", "train.schedule.min_lr=1e-2")
    load("train.optim.lr=1e-3", "train.schedule.min_lr=1e-3")  # equal: a flat schedule is fine
    load("train.optim.lr=1e-3", "train.schedule.min_lr=1e-2", "train.schedule.name=constant")
    with pytest.raises(ConfigError, match="min_lr must be >= 0"):
        load("train.schedule.min_lr=-1")


def test_a_sweep_that_could_sample_a_rising_schedule_fails_before_any_trial():
    from raylm.tune.config import parse_space

    base = C.to_dict(load("train.schedule.min_lr=1e-4"))
    with pytest.raises(ValueError, match="train.optim.lr: value 1e-05 does not make a valid config.*min_lr"):
        parse_space({"train.optim.lr": {"loguniform": [1e-5, 1e-3]}}, base)
    assert parse_space({"train.optim.lr": {"loguniform": [1e-4, 1e-3]}}, base)[0].args == [1e-4, 1e-3]
