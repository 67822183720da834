"""LoRA classification fine-tuning under DDP on Ray Train (2 workers, shared Ray): the adapters'
gradients are averaged across workers, so 2 workers x 4 examples train exactly as 1 process x 8
(no dropout), and the checkpoint holds the adapters and head alone."""

import json

import pytest
from safetensors.torch import load_file

from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.finetune import FinetuneConfig, run_classify
from raylm.train.lora import LoraConfig
from tiny_classify import tiny_classify  # tests/tiny_classify.py


def _losses(out):
    return {m["step"]: m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss" in m}


def test_lora_classify_ddp_matches_one_process(ray_session, tmp_path):
    data, _, src = tiny_classify(tmp_path, n_layer=2, n_embd=32)
    ft = FinetuneConfig(task="classify", train_file=str(data), val_file=str(data), text_column="sentence",
                        tokenizer=str(tmp_path / "tokenizer.json"), head_dropout=0.0,
                        lora=LoraConfig(r=4, alpha=8.0, targets=["attn.c_attn", "mlp.c_proj"]))
    tc = dict(max_steps=8, eval_interval=4, log_interval=1, keep_checkpoints=0, optim=OptimConfig(lr=1e-2),
              schedule=ScheduleConfig(warmup_steps=1))
    one = run_classify(ft, TrainConfig(batch_size=8, num_workers=0, **tc), str(tmp_path / "one"), 1, str(src))
    two = run_classify(ft, TrainConfig(batch_size=4, num_workers=2, cpus_per_worker=1, **tc), str(tmp_path / "two"),
                       1, str(src))
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4)
    assert a[8] < a[1]  # it trained
    assert two["test"]["loss"] == pytest.approx(one["test"]["loss"], abs=1e-4)
    keys = set(load_file(f"{two['checkpoint']}/model.safetensors"))
    assert keys == {f"gpt.blocks.{i}.{t}.lora_{ab}" for i in range(2) for t in ("attn.c_attn", "mlp.c_proj")
                    for ab in "AB"} | {"head.weight", "head.bias"}


def test_continued_pretraining_with_lora_from_the_cli(ray_session, tmp_path, capsys):
    """`raylm finetune` (task lm) with finetune.lora: the checkpoint holds adapters alone and names
    its base; eval reads it merged."""
    from pathlib import Path

    from raylm.cli import main

    tiny = str(Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml")
    sets = ["--set", f"out={tmp_path / 'run'}", "--set", "train.max_steps=10", "--set", "train.eval_interval=5",
            "--set", "train.num_workers=1"]
    assert main(["run", tiny, *sets]) == 0, capsys.readouterr().err
    assert main(["finetune", tiny, *sets, "--set", "finetune.lora.r=4"]) == 0, capsys.readouterr().err
    assert "[train] LoRA r=4" in capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "finetune" / "result.json").read_text())
    ck = Path(result["checkpoint"])
    keys = set(load_file(str(ck / "model.safetensors")))
    assert keys and all(k.endswith(("lora_A", "lora_B")) for k in keys), sorted(keys)[:5]
    assert json.loads((ck / "model.json").read_text())["lora"]["r"] == 4
    assert main(["eval", tiny, *sets, "--set", f"eval.checkpoint={ck}", "--set", "eval.max_tokens=2000"]) == 0
