"""Ray Train specifics on the shared session Ray: FSDP vs DDP, and surviving a killed worker."""

import json
from dataclasses import replace

import pytest

from raylm.model.gpt import GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.config import ScheduleConfig, TrainConfig
from raylm.train.trainer import fit

MODEL = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.0)


def _cfg(**kw):
    base = dict(max_steps=8, batch_size=4, eval_interval=4, eval_batches=2, log_interval=1, num_workers=2,
                cpus_per_worker=1, keep_checkpoints=0, schedule=ScheduleConfig(warmup_steps=2))
    return TrainConfig(**{**base, **kw})


def _losses(out):
    return {m["step"]: m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss" in m}


# encoder: masked-token loss, the same masks on both. One side of each pair takes train.fused_loss
# (the chunked head + loss): under DDP for the decoder, under FSDP for the encoder.
@pytest.mark.parametrize("arch,fused", [("decoder", "ddp"), ("encoder", "fsdp")])
def test_fsdp_matches_ddp_and_its_checkpoint_loads_unsharded(ray_session, tiny_shards, tmp_path, arch, fused):
    model = replace(MODEL, arch=arch)
    ddp = fit(model, _cfg(parallelism="ddp", fused_loss=fused == "ddp"), str(tiny_shards), str(tmp_path / "ddp"), 5)
    fsdp = fit(model, _cfg(parallelism="fsdp", fused_loss=fused == "fsdp"), str(tiny_shards), str(tmp_path / "fsdp"),
               5)
    a, b = _losses(tmp_path / "ddp"), _losses(tmp_path / "fsdp")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    times = [json.loads(x)["time"] for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert times == sorted(times) and times[-1] - times[0] < 600  # rows stamped with the wall clock
    for s in a:
        assert b[s] == pytest.approx(a[s], abs=1e-4)
    assert fsdp["metrics"]["val_loss"] == pytest.approx(ddp["metrics"]["val_loss"], abs=1e-4)
    assert fsdp["metrics"]["param_mem_mb"] < 0.75 * ddp["metrics"]["param_mem_mb"]  # sharded over 2
    m = ckpt.load_model(fsdp["checkpoint"])  # full weights, loadable without FSDP
    assert m.cfg.n_embd == 32 and m.cfg.arch == arch


def test_killed_worker_is_replaced_and_run_resumes_exactly(ray_session, tiny_shards, tmp_path):
    ref_out, out = tmp_path / "ref", tmp_path / "failing"
    cfg = _cfg(max_steps=10, max_failures=1)
    fit(MODEL, replace(cfg, max_failures=0), str(tiny_shards), str(ref_out), 9)
    marker = tmp_path / "died"
    res = fit(MODEL, cfg, str(tiny_shards), str(out), 9, env={"RAYLM_FAIL_AT": f"6:1:{marker}"})
    assert marker.exists()  # rank 1 really exited at step 6
    assert res["metrics"]["step"] == 10
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step"] for m in lines if "loss" in m]
    # 1..6 before the crash (6 may or may not be logged), then resumed from the step-4 checkpoint
    assert steps[-6:] == [5, 6, 7, 8, 9, 10] and max(steps[:-6]) <= 6
    ref = _losses(ref_out)
    for m in lines[-6:]:
        assert m["loss"] == pytest.approx(ref[m["step"]], abs=1e-5)  # nothing skipped or repeated
