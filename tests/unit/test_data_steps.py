"""data.steps: the split is a step like the others, placed where it always ran when unlisted;
every stage has the one signature run(ds, cfg, ctx). No Ray: stages are only imported."""

from __future__ import annotations

import inspect

import pytest

from raylm import config as C
from raylm.data.config import STEPS, DataConfig, fingerprint, plan
from raylm.data.pipeline import stage_function
from raylm.root import RootConfig


def test_unlisted_split_runs_before_augment_else_last():
    assert plan([]) == ["split"]
    assert plan(["quality", "dedup"]) == ["quality", "dedup", "split"]
    assert plan(["dedup", "augment"]) == ["dedup", "split", "augment"]
    assert plan(["split", "quality"]) == ["split", "quality"]  # listed: exactly where the user put it
    assert plan(["dedup", "split", "augment"]) == ["dedup", "split", "augment"]


def test_the_plan_is_resolved_at_run_time_not_saved():
    """The saved config keeps the user's list, so existing outputs keep their fingerprint."""
    cfg = C.load(RootConfig, None, ["data.steps=[dedup, augment]"]).data
    assert C.to_dict(cfg)["steps"] == ["dedup", "augment"]
    assert fingerprint(cfg, 1) == fingerprint(DataConfig(steps=["dedup", "augment"]), 1)


@pytest.mark.parametrize("steps,match", [
    ("[split, dedup, split]", r"data.steps: split listed more than once"),
    ("[augment, split]", r"data.steps: split must come before augment"),
    ("[augment, dedup]", r"data.steps: augment must be the last stage"),
    ("[splits]", r"data.steps: unknown stage 'splits'; valid stages: .*split, mix, augment"),
])
def test_step_order_errors_name_the_key(steps, match):
    with pytest.raises(C.ConfigError, match=match):
        C.load(RootConfig, None, [f"data.steps={steps}"])


def test_every_stage_takes_ds_cfg_ctx():
    for name in STEPS:
        params = list(inspect.signature(stage_function(name)).parameters)
        assert params == ["ds", "cfg", "ctx"], (name, params)
