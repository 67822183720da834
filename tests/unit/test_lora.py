"""LoRA (raylm/train/lora.py), no Ray: only adapters (and a classifier's head) change in training,
merged and unmerged models give the same outputs, checkpoints hold the adapters alone and load
back merged (eval, export) or unmerged (an exact resume), the layer matches peft's, config errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn as nn

from raylm.config import ConfigError, from_dict
from raylm.model.gpt import GPT, Block, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train import lora
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.finetune import FinetuneConfig, SequenceClassifier, classifier_state, param_groups
from raylm.train.lora import TARGETS, LoraConfig, LoRALinear
from raylm.train.optim import build_optimizer
from tiny_classify import rerun_without_last_checkpoint, tiny_classify  # tests/tiny_classify.py

CFG = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=40, bias=True)


def _adapted(cfg: GPTConfig = CFG, lo: LoraConfig | None = None) -> tuple[GPT, GPT]:
    """(base GPT, a copy with adapters whose B is random, i.e. a trained-looking update)."""
    torch.manual_seed(0)
    base = GPT(cfg).eval()
    model = GPT(cfg).eval()
    model.load_state_dict(base.state_dict())
    lora.add_adapters(model, lo or LoraConfig(r=4, alpha=8.0))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0.0, 0.1)
    return base, model


def test_config_checks_name_the_valid_targets():
    assert not LoraConfig().on and LoraConfig(r=8).on and LoraConfig().targets == list(TARGETS)
    with pytest.raises(ValueError, match=r"'attn.q'.*valid: attn.c_attn .*attn.c_proj.*mlp.c_fc.*mlp.c_proj.*wte"):
        LoraConfig(r=8, targets=["attn.q"])
    for bad in (dict(r=-1), dict(alpha=0.0), dict(dropout=1.0), dict(targets=[]),
                dict(targets=["mlp.c_fc", "mlp.c_fc"])):
        with pytest.raises(ValueError):
            LoraConfig(**bad)
    with pytest.raises(ConfigError, match=r"finetune.lora.*'q_proj'.*attn.c_attn"):
        from_dict(FinetuneConfig, {"lora": {"r": 8, "targets": ["q_proj"]}}, "finetune")
    with pytest.raises(ConfigError, match="unknown key 'finetune.lora.rank'"):
        from_dict(FinetuneConfig, {"lora": {"rank": 8}}, "finetune")
    ft = from_dict(FinetuneConfig, {"lora": {"r": "8", "alpha": "3e1", "targets": ["attn.c_attn"]}}, "finetune")
    assert ft.lora == LoraConfig(r=8, alpha=30.0, targets=["attn.c_attn"])
    with pytest.raises(ValueError, match="random_init"):
        FinetuneConfig(random_init=True, lora=LoraConfig(r=8))


def test_targets_are_the_linear_layers_of_a_block():
    linears = {n for n, m in Block(CFG).named_modules() if isinstance(m, nn.Linear)}
    assert linears == set(TARGETS)


def test_adapted_model_starts_as_the_base_and_merges_exactly():
    torch.manual_seed(0)
    base = GPT(CFG).eval()
    model = GPT(CFG).eval()
    model.load_state_dict(base.state_dict())
    n = lora.add_adapters(model, LoraConfig(r=4, alpha=8.0, targets=["attn.c_attn", "mlp.c_proj"]))
    assert n == 2 * 4 * ((32 + 96) + (128 + 32))
    x = torch.randint(0, 40, (3, 16))
    assert torch.equal(model(x)[0], base(x)[0])  # B = 0: the update is zero
    _, model = _adapted()
    unmerged = model(x)[0]
    assert not torch.allclose(unmerged, base(x)[0], atol=1e-3)
    # the state-dict merge (what checkpoints use) and the module merge give the same plain GPT
    plain = GPT(CFG).eval()
    plain.load_state_dict(lora.merge_state(model.state_dict(), 8.0 / 4), strict=True)
    assert torch.allclose(plain(x)[0], unmerged, atol=1e-5)
    merged = lora.merge(model)
    assert not lora.has_adapters(merged)
    assert torch.allclose(merged(x)[0], unmerged, atol=1e-5)
    assert set(merged.state_dict()) == set(plain.state_dict())


def test_embedding_adapter_stays_tied_and_merges_exactly():
    """targets: wte adapts the token embedding; the LM head (the same matrix) reads the adapted
    one too, so the merged model is a plain tied GPT giving the unmerged outputs; the head's view
    of the adapter is never stored; the update matches peft's embedding LoRA."""
    torch.manual_seed(0)
    base = GPT(CFG).eval()
    model = GPT(CFG).eval()
    model.load_state_dict(base.state_dict())
    n = lora.add_adapters(model, LoraConfig(r=4, alpha=8.0, targets=["attn.c_attn", "wte"]))
    assert n == 2 * 4 * (32 + 96) + 4 * (40 + 32)
    x = torch.randint(0, 40, (3, 16))
    assert torch.equal(model(x)[0], base(x)[0])  # B = 0
    with torch.no_grad():
        model.wte.lora_B.normal_(0.0, 0.1)
    assert model.lm_head.lora_B is model.wte.lora_B and model.lm_head.weight is model.wte.weight
    unmerged = model(x)[0]
    assert not torch.allclose(unmerged, base(x)[0], atol=1e-3)
    stored = lora.adapter_state(ckpt.model_state(model))
    assert set(stored) == {"wte.lora_A", "wte.lora_B", *(f"blocks.{i}.attn.c_attn.lora_{ab}"
                                                         for i in range(2) for ab in "AB")}
    plain = GPT(CFG).eval()  # what a checkpoint reads: base weights + stored adapters, merged
    full = {**ckpt.model_state(base), **stored}
    missing, unexpected = plain.load_state_dict(lora.merge_state(full, 8.0 / 4), strict=False)
    assert missing == [ckpt.TIED] and not unexpected
    assert torch.allclose(plain(x)[0], unmerged, atol=1e-5)
    merged = lora.merge(model)
    assert not lora.has_adapters(merged) and merged.lm_head.weight is merged.wte.weight
    assert torch.allclose(merged(x)[0], unmerged, atol=1e-5)
    peft = pytest.importorskip("peft")
    ref = nn.Module()
    ref.wte = nn.Embedding(40, 32)
    ref = peft.inject_adapter_in_model(peft.LoraConfig(r=4, lora_alpha=8, target_modules=["wte"]), ref)
    adapted = lora.LoRAEmbedding(nn.Embedding(40, 32), r=4, alpha=8.0)
    with torch.no_grad():
        adapted.lora_B.normal_(0.0, 0.1)
        ref.wte.weight.copy_(adapted.weight)
        ref.wte.lora_embedding_A["default"].copy_(adapted.lora_B.T)  # peft: A (r, V) per token, B (d, r)
        ref.wte.lora_embedding_B["default"].copy_(adapted.lora_A.T)
        assert torch.allclose(ref.wte(x), adapted(x), atol=1e-6)


def test_lora_layer_matches_peft():
    peft = pytest.importorskip("peft")
    _, ours = _adapted()
    ref = GPT(CFG).eval()
    ref.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.endswith(lora.ADAPTER_KEYS)},
                        strict=False)
    ref = peft.inject_adapter_in_model(peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                       target_modules=["c_attn", "c_proj", "c_fc"]), ref)
    theirs = dict(ref.named_modules())
    with torch.no_grad():
        for name, m in ours.named_modules():
            if isinstance(m, LoRALinear):
                t = theirs[name]
                t.lora_A["default"].weight.copy_(m.lora_A)
                t.lora_B["default"].weight.copy_(m.lora_B)
                assert t.scaling["default"] == m.scale
                assert torch.allclose(t.get_delta_weight("default"), m.merged().weight - m.weight, atol=1e-6)
    x = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ref(x)[0], ours(x)[0], atol=1e-5)
    # peft's init of A: nn.Linear's kaiming uniform, bound 1/sqrt(in); B zero
    fresh = LoRALinear(nn.Linear(64, 32), r=8, alpha=16.0)
    assert fresh.lora_A.abs().max() <= 1 / 64 ** 0.5 and not fresh.lora_B.any()


def test_only_adapters_and_head_change_in_training():
    torch.manual_seed(0)
    model = SequenceClassifier(CFG, 3, "last", head_dropout=0.1)
    lora.add_adapters(model.gpt, LoraConfig(r=4, alpha=8.0, dropout=0.1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(param_groups(model, 0.1, 2.0, 0.8), OptimConfig(lr=1e-2, weight_decay=0.1))
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {k for k in before if k.endswith(lora.ADAPTER_KEYS) or k.startswith("head.")}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad}
    for _ in range(3):
        x = torch.randint(0, 40, (4, 16))
        loss = nn.functional.cross_entropy(model(x, torch.full((4,), 16)), torch.tensor([0, 1, 2, 0]))
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = model.state_dict()
    for k, v in before.items():
        if k in trainable:
            assert not torch.equal(after[k], v), f"{k} did not train"
        else:
            assert torch.equal(after[k], v), f"frozen {k} changed"  # bitwise: weight decay never reached it
    assert set(classifier_state(model)) == trainable


def _lm_run(tiny_shards, out, steps, init_from, lo, world=1):
    from raylm.train.loop import LMRun, train_worker
    from raylm.train.session import LocalSession

    tc = TrainConfig(max_steps=steps, batch_size=4, eval_interval=4, eval_batches=2, log_interval=1, num_workers=0,
                     keep_checkpoints=0, parallelism="fsdp" if world > 1 else "ddp",
                     optim=OptimConfig(lr=3e-3), schedule=ScheduleConfig(warmup_steps=2, decay_steps=8))
    session = LocalSession(dir=str(out), keep=0, world=world)
    model_cfg = ckpt.read_model_config(init_from)
    train_worker(LMRun(model=model_cfg, train=tc, data_dir=str(tiny_shards), seed=3, out=str(out),
                       init_from=str(init_from), lora=lo), session)
    return session


def test_continued_pretraining_with_lora(tiny_shards, tmp_path):
    """Checkpoints hold the adapters alone; a resume from step 4 gives the uninterrupted losses;
    the checkpoint loads merged (eval, export) with the adapted model's logits; a changed or
    missing base is an error; FSDP is refused."""
    from raylm.data.shards import read_manifest

    vocab = read_manifest(tiny_shards)["vocab_size"]
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=vocab, dropout=0.1)
    torch.manual_seed(0)
    base = ckpt.save(tmp_path / "base", GPT(cfg), cfg)
    base_weights = {k: v.clone() for k, v in ckpt.load_model(base).state_dict().items()}
    lo = LoraConfig(r=4, alpha=8.0, dropout=0.1, targets=["attn.c_attn", "mlp.c_fc", "wte"])
    full = _lm_run(tiny_shards, tmp_path / "full", 8, base, lo)
    _lm_run(tiny_shards, tmp_path / "part", 4, base, lo)
    resumed = _lm_run(tiny_shards, tmp_path / "part", 8, base, lo)
    ref = {m["step"]: m["loss"] for m in full.history}
    assert resumed.history[0]["step"] == 5
    for m in resumed.history:
        assert m["loss"] == pytest.approx(ref[m["step"]], abs=1e-6)

    ck = full.latest_checkpoint()
    from safetensors.torch import load_file

    keys = set(load_file(str(ck / "model.safetensors")))
    assert keys and all(k.endswith(lora.ADAPTER_KEYS) for k in keys) and len(keys) == 2 * 2 * 2 + 2  # + wte's
    rec = json.loads((ck / "model.json").read_text())["lora"]
    assert rec["r"] == 4 and rec["base"] == str(base.resolve()) and rec["base_sha256"] == ckpt.identity(base)
    assert all(torch.equal(v, ckpt.load_model(base).state_dict()[k]) for k, v in base_weights.items())

    merged = ckpt.load_model(ck).eval()  # what eval, generate and export read
    assert not lora.has_adapters(merged)
    adapted = ckpt.load_model(base)
    lora.add_adapters(adapted, lo)
    ckpt.load_weights(adapted, ck)
    x = torch.randint(0, vocab, (2, 32))
    with torch.no_grad():
        assert torch.allclose(merged(x)[0], adapted.eval()(x)[0], atol=1e-5)
        assert not torch.allclose(merged(x)[0], ckpt.load_model(base)(x)[0], atol=1e-4)  # it did train

    moved = tmp_path / "moved"
    shutil.move(base, moved)
    with pytest.raises(FileNotFoundError, match="base checkpoint .* is not there"):
        ckpt.load_model(ck)
    torch.manual_seed(1)
    ckpt.save(base, GPT(cfg), cfg)  # another model at the same path
    with pytest.raises(ckpt.CheckpointMismatch, match="checksums differ"):
        ckpt.load_model(ck)
    with pytest.raises(ValueError, match="parallelism=ddp"):
        _lm_run(tiny_shards, tmp_path / "fsdp", 4, moved, lo, world=2)


def test_classify_with_lora_checkpoints_adapters_and_exports_merged(tmp_path):
    from raylm.train.finetune import evaluate_classifier, load_classifier, run_classify

    data, tok_path, src = tiny_classify(tmp_path)
    ft = FinetuneConfig(task="classify", train_file=str(data), val_file=str(data), text_column="sentence",
                        tokenizer=str(tok_path), head_dropout=0.2, metric="loss",
                        lora=LoraConfig(r=4, alpha=8.0, dropout=0.1, targets=[*TARGETS, "wte"]))
    tc = TrainConfig(max_steps=20, batch_size=4, eval_interval=10, log_interval=10, num_workers=0, keep_checkpoints=0,
                     optim=OptimConfig(lr=1e-2), schedule=ScheduleConfig(warmup_steps=2))
    rep = run_classify(ft, tc, str(tmp_path / "full"), 3, str(src))
    ck = rep["checkpoint"]
    from safetensors.torch import load_file

    keys = set(load_file(f"{ck}/model.safetensors"))
    assert keys == ({f"gpt.blocks.0.{t}.lora_{ab}" for t in TARGETS for ab in "AB"}
                    | {"gpt.wte.lora_A", "gpt.wte.lora_B", "head.weight", "head.bias"})
    assert rep["final"]["trainable_params"] == sum(v.numel() for v in load_file(f"{ck}/model.safetensors").values())
    assert rep["final"]["step_s"] > 0
    meta = json.loads(open(f"{ck}/model.json").read())
    assert meta["lora"]["base"] == str(src.resolve()) and meta["init_from"] == str(src.resolve())

    # merged for eval and export: the same numbers as the adapted model had in training
    again = evaluate_classifier(ck, ft, str(tmp_path / "ev"))
    assert again["test"]["confusion_matrix"] == rep["test"]["confusion_matrix"]
    assert again["test"]["loss"] == pytest.approx(rep["test"]["loss"], rel=1e-5)
    merged, _ = load_classifier(ck)
    assert not lora.has_adapters(merged)

    # an exact resume: adapters and head come back unmerged on the frozen base
    resumed = rerun_without_last_checkpoint(ft, tc, tmp_path / "cut", str(src))
    assert resumed["final"]["step"] == 20
    assert resumed["test"]["loss"] == pytest.approx(rep["test"]["loss"], rel=1e-6)

    with pytest.raises(ValueError, match="finetune.init_from"):
        run_classify(ft, tc, str(tmp_path / "rand"), 3, None, model_cfg=ckpt.read_model_config(src))


def test_export_merges_adapters(tmp_path):
    """`raylm export` of a LoRA checkpoint: the exported GPT-2 gives the adapted model's logits."""
    transformers = pytest.importorskip("transformers")
    from raylm.data.tokenize import EOS, char_tokenizer
    from raylm.export import export_lm

    tok = char_tokenizer("abcdefghijklmnopqrstuvwxyz ,.'" + EOS)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=tok.get_vocab_size())
    base_model, model = _adapted(cfg)
    base = ckpt.save(tmp_path / "base", base_model, cfg)
    rec = ckpt.lora_record(LoraConfig(r=4, alpha=8.0), base)
    ck = ckpt.save(tmp_path / "lora", model, cfg, weights=lora.adapter_state(model.state_dict()), extra={"lora": rec})
    x = torch.randint(0, cfg.vocab_size, (2, 16))
    with torch.no_grad():
        want = model(x)[0]
        for m in (ckpt.load_model(ck).eval(), model):  # read merged from disk; merged on a copy in memory
            hf = transformers.AutoModelForCausalLM.from_pretrained(export_lm(m, tok.to_str(), tmp_path / "hf")).eval()
            assert torch.allclose(hf(x).logits, want, atol=1e-4)
    assert lora.has_adapters(model)  # export merged a copy, not the model


def test_a_lora_runs_flops_leave_out_the_frozen_weights_gradients():
    """MFU counts what a step computes: 6N + 12LTC for a full model; with LoRA, the frozen body
    still costs its forward and input-gradient products (4 per weight) but no weight gradient."""
    from raylm.train.worker import train_flops_per_token

    plain = GPT(CFG)
    assert train_flops_per_token(plain) == plain.flops_per_token()
    _, adapted = _adapted()
    frozen = sum(p.numel() for n, p in adapted.named_parameters() if not p.requires_grad and n != "wpe.weight")
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    attention = 12 * CFG.n_layer * CFG.block_size * CFG.n_embd
    assert train_flops_per_token(adapted) == 4 * frozen + 6 * trainable + attention
    assert frozen > trainable > 0
