from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from raylm import config as C
from raylm.root import RootConfig

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10
    name: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    path: str | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


def test_yaml_float_string_is_coerced():
    raw = yaml.safe_load("inner: {lr: 3e-4}")
    assert raw["inner"]["lr"] == "3e-4"  # PyYAML's behaviour this guards against
    assert C.from_dict(Outer, raw).inner.lr == pytest.approx(3e-4)


def test_unknown_key_names_full_path_and_valid_keys():
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(Outer, {"inner": {"lrr": 1}})
    msg = str(e.value)
    assert "inner.lrr" in msg and "lr" in msg and "steps" in msg and "tags" in msg


def test_wrong_type_and_literal_errors():
    with pytest.raises(C.ConfigError, match="inner.steps: expected an integer"):
        C.from_dict(Outer, {"inner": {"steps": "ten"}})
    with pytest.raises(C.ConfigError, match="inner.name"):
        C.from_dict(Outer, {"inner": {"name": "c"}})
    with pytest.raises(C.ConfigError, match="flag: expected true or false"):
        C.from_dict(Outer, {"flag": "yes please"})
    with pytest.raises(C.ConfigError, match=r"inner.tags\[1\]"):
        C.from_dict(Outer, {"inner": {"tags": ["x", {"y": 1}]}})


def test_overrides_go_through_validation():
    raw = {}
    for item in ["inner.lr=1e-2", "inner.tags=[a, b]", "flag=true", "inner.path=null"]:
        C.set_path(raw, *C.parse_override(item))
    cfg = C.from_dict(Outer, raw)
    assert cfg.inner.lr == 1e-2 and cfg.inner.tags == ["a", "b"] and cfg.flag is True and cfg.inner.path is None
    with pytest.raises(C.ConfigError, match="KEY=VALUE"):
        C.parse_override("inner.lr")
    with pytest.raises(C.ConfigError, match="unknown key 'inner.nope'"):
        C.load(Outer, None, ["inner.nope=1"])


def test_round_trip_save_load(tmp_path):
    cfg = C.load(RootConfig, REPO / "configs" / "quickstart.yaml", ["train.optim.lr=2e-3"])
    p = C.save(cfg, tmp_path / "config.yaml")
    again = C.load(RootConfig, p)
    assert again == cfg and again.train.optim.lr == 2e-3


def test_component_post_init_errors_are_config_errors():
    with pytest.raises(C.ConfigError, match="n_embd"):
        C.load(RootConfig, None, ["model.n_embd=100", "model.n_head=3"])
    with pytest.raises(C.ConfigError, match="unknown stage"):
        C.load(RootConfig, None, ["data.steps=[nosuchstage]"])


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("**/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    raw = C.read_yaml(path)
    if "sweep" in raw:  # tune configs: a base config plus a search space, checked in test_tune
        pytest.skip("sweep config")
    C.load(RootConfig, path)
