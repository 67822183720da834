import math

import numpy as np
import pytest
import torch

from raylm.model.gpt import GPT, GPTConfig
from raylm.train import checkpoint as ckpt
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.data import Loader, TokenWindows, feistel_permute
from raylm.train.loop import LMRun, train_worker
from raylm.train.session import LocalSession
from raylm.train.optim import build_optimizer, decay_groups, lr_at


def tiny_cfg(**kw):
    return GPTConfig(**{"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16, "vocab_size": 50, **kw})


@pytest.mark.parametrize("init", ["scaled_normal", "normal", "xavier_uniform", "xavier_normal", "kaiming"])
def test_model_shapes_and_tied_embeddings(init):
    torch.manual_seed(0)
    m = GPT(tiny_cfg(init=init))
    x = torch.randint(0, 50, (3, 16))
    logits, loss = m(x, x)
    assert logits.shape == (3, 16, 50) and loss.item() > 0
    assert m.lm_head.weight is m.wte.weight
    assert m.generate(x[:, :4], 5, top_k=10, top_p=0.9).shape == (3, 9)
    with pytest.raises(ValueError, match="exceeds block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_scaled_init_shrinks_residual_projections():
    torch.manual_seed(0)
    m = GPT(tiny_cfg(n_layer=8, n_embd=128, init="scaled_normal"))
    std = m.blocks[0].attn.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(16), rel=0.1)
    assert m.blocks[0].attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_model_is_causal():
    torch.manual_seed(0)
    m = GPT(tiny_cfg()).eval()
    x = torch.randint(0, 50, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 50
    assert torch.allclose(m(x)[0][0, :10], m(y)[0][0, :10], atol=1e-6)


def test_weight_decay_only_on_matrices():
    opt = build_optimizer(decay_groups(GPT(tiny_cfg(bias=True)), 0.1), OptimConfig(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) > 0


def test_cpu_adamw_is_fused_and_steps_as_the_per_parameter_loop():
    """build_optimizer takes Adam(W)'s fused kernel on CPU too; it moves the weights as PyTorch's
    default per-parameter loop does (a resume from an older checkpoint continues the same run)."""
    torch.manual_seed(0)
    # no biases: the key bias's gradient is ~1e-9 (softmax ignores it), where the two kernels' eps
    # arithmetic differs and Adam's normalised step turns that into a visible difference
    a, b = GPT(tiny_cfg()), GPT(tiny_cfg())
    b.load_state_dict(a.state_dict())
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1)
    fused = build_optimizer(decay_groups(a, 0.1), cfg)
    loop = torch.optim.AdamW(decay_groups(b, 0.1), lr=1e-2, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    assert fused.defaults["fused"] and not loop.defaults.get("fused")
    x = torch.randint(0, 50, (2, 16))
    for _ in range(3):
        for m, opt in ((a, fused), (b, loop)):
            m(x, x)[1].backward()
            opt.step()
            opt.zero_grad()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    loop.load_state_dict(fused.state_dict())  # the state is interchangeable


def test_schedules():
    s = ScheduleConfig(name="cosine", warmup_steps=10, min_lr=0.1)
    assert lr_at(0, 1.0, s, 100) == pytest.approx(1 / 11)
    assert lr_at(10, 1.0, s, 100) == pytest.approx(1.0)
    assert lr_at(55, 1.0, s, 100) == pytest.approx(0.55)
    assert lr_at(100, 1.0, s, 100) == pytest.approx(0.1)
    lin = ScheduleConfig(name="linear", warmup_steps=0, min_lr=0.0)
    assert lr_at(50, 1.0, lin, 100) == pytest.approx(0.5)
    wsd = ScheduleConfig(name="wsd", warmup_steps=0, min_lr=0.0, wsd_decay_fraction=0.2)
    assert lr_at(79, 1.0, wsd, 100) == 1.0 and lr_at(90, 1.0, wsd, 100) == pytest.approx(0.5)
    assert lr_at(70, 1.0, ScheduleConfig(name="constant", warmup_steps=0), 100) == 1.0


def test_feistel_is_a_permutation():
    for n in (1, 2, 7, 1000, 4097):
        p = feistel_permute(np.arange(n), n, key=3)
        assert sorted(p.tolist()) == list(range(n))
    assert feistel_permute(np.arange(1000), 1000, 3).tolist() != list(range(1000))


def test_loader_ranks_partition_an_epoch_without_overlap(tiny_shards):
    w = TokenWindows(tiny_shards, "train", 16, seed=1)
    n = w.num_windows(0)
    seen = []
    for rank in range(2):
        ld = Loader(w, 4, rank, 2, prefetch=0)
        for _ in range(n // 8):
            x, y = next(ld)
            assert torch.equal(x[:, 1:], y[:, :-1])
            seen += [tuple(r.tolist()) for r in x]
    assert len(seen) == len(set(seen)) == (n // 8) * 8  # no window twice, none skipped but the tail


def test_loader_resume_and_prefetch_agree(tiny_shards):
    w = TokenWindows(tiny_shards, "train", 16, seed=1)
    a = Loader(w, 3, prefetch=2)
    first = [next(a) for _ in range(5)]
    b = Loader(w, 3, prefetch=0, state=a.state)
    after_a = [next(a) for _ in range(40)]
    after_b = [next(b) for _ in range(40)]  # crosses an epoch boundary
    assert all(torch.equal(x[0], y[0]) for x, y in zip(after_a, after_b))
    assert not torch.equal(first[0][0], after_a[0][0])


def test_too_small_split_is_a_clear_error(tiny_shards):
    with pytest.raises(ValueError, match="too small for one sequence"):
        TokenWindows(tiny_shards, "val", 100_000)


def _run(tiny_shards, out, steps, **kw):
    cfg = TrainConfig(max_steps=steps, batch_size=4, eval_interval=4, eval_batches=2, log_interval=1,
                      num_workers=0, keep_checkpoints=0, schedule=ScheduleConfig(warmup_steps=2, decay_steps=12), **kw)
    session = LocalSession(dir=str(out), keep=0)
    train_worker(LMRun(model=tiny_cfg(vocab_size=0, dropout=0.1), train=cfg, data_dir=str(tiny_shards), seed=3,
                       out=str(out)), session)
    return session


def test_exact_resume_reproduces_the_loss_sequence(tiny_shards, tmp_path):
    full = _run(tiny_shards, tmp_path / "full", 12)
    part = _run(tiny_shards, tmp_path / "part", 8)  # "interrupted" at step 8 (a checkpoint), same schedule
    resumed = _run(tiny_shards, tmp_path / "part", 12)  # same dir: resumes from step 8
    ref = {m["step"]: m["loss"] for m in full.history}
    got = {m["step"]: m["loss"] for m in part.history + resumed.history}
    assert sorted(got) == list(range(1, 13))
    for s in range(1, 13):
        assert got[s] == pytest.approx(ref[s], abs=1e-5)
    assert (tmp_path / "part" / "checkpoints" / "step-12" / "model.safetensors").exists()


def test_checkpoint_shape_mismatch_is_named(tiny_shards, tmp_path):
    _run(tiny_shards, tmp_path / "r", 4)
    path = tmp_path / "r" / "checkpoints" / "step-4"
    m = ckpt.load_model(path)
    assert m.cfg.n_embd == 32
    other = GPT(tiny_cfg(n_embd=64, vocab_size=m.cfg.vocab_size))
    with pytest.raises(ValueError, match="does not fit this model"):
        ckpt.load_weights(other, path)


def test_early_stopping_stops(tiny_shards, tmp_path):
    s = _run(tiny_shards, tmp_path / "es", 400, early_stopping_patience=1, early_stopping_min_delta=10.0)
    assert s.history[-1]["early_stopped"] and s.history[-1]["step"] == 8


def test_activation_checkpointing_gives_the_same_gradients():
    x = torch.randint(0, 50, (2, 16))
    grads = []
    for ac in (False, True):
        torch.manual_seed(0)
        m = GPT(tiny_cfg(activation_checkpointing=ac))
        m(x, x)[1].backward()
        grads.append(m.blocks[0].mlp.c_fc.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bf16_and_sgd_recipe_trains_on_cpu(tiny_shards, tmp_path):
    from raylm.train.config import OptimConfig

    s = _run(tiny_shards, tmp_path / "bf16", 4, precision="bf16", grad_accum=2,
             optim=OptimConfig(name="sgd", lr=0.1, nesterov=True))
    assert s.history[-1]["step"] == 4 and math.isfinite(s.history[-1]["val_loss"])


def test_keep_best_by_val_loss_plus_newest(tiny_shards, tmp_path):
    import json

    cfg = TrainConfig(max_steps=12, batch_size=4, eval_interval=2, eval_batches=2, log_interval=2, num_workers=0,
                      keep_checkpoints=2, keep_by="val_loss", schedule=ScheduleConfig(warmup_steps=2))
    s = LocalSession(dir=str(tmp_path), keep=2, keep_by="val_loss")
    train_worker(LMRun(model=tiny_cfg(vocab_size=0), train=cfg, data_dir=str(tiny_shards), seed=3,
                       out=str(tmp_path)), s)
    kept = sorted(int(p.name[5:]) for p in (tmp_path / "checkpoints").glob("step-*"))
    vals = {m["step"]: m["val_loss"] for m in s.history if "val_loss" in m}
    best2 = sorted(sorted(vals, key=vals.get)[:2])
    assert kept == sorted(set(best2) | {12})
    assert all(json.loads((tmp_path / "checkpoints" / f"step-{k}" / "model.json").read_text())["step"] == k
               for k in kept)


@pytest.mark.slow  # inductor compiles C++ kernels: ~30-60 s on 2 cores
def test_compiled_training_matches_eager_and_checkpoints_plain_weights(tiny_shards, tmp_path):
    """train.compile=True: same losses as eager (dropout off; fused kernels round differently),
    and the checkpoint holds the plain module's weights (no `_orig_mod.` prefix), loadable eagerly."""
    hist = {}
    for compiled in (False, True):
        cfg = TrainConfig(max_steps=4, batch_size=4, eval_interval=4, eval_batches=2, log_interval=1,
                          num_workers=0, keep_checkpoints=0, compile=compiled, schedule=ScheduleConfig(warmup_steps=1))
        session = LocalSession(dir=str(tmp_path / str(compiled)), keep=0)
        train_worker(LMRun(model=tiny_cfg(vocab_size=0, dropout=0.0), train=cfg, data_dir=str(tiny_shards),
                           seed=3, out=str(tmp_path / str(compiled))), session)
        hist[compiled] = [m["loss"] for m in session.history]
    assert len(hist[True]) == 4 and hist[True] == pytest.approx(hist[False], abs=1e-4)
    m = ckpt.load_model(tmp_path / "True" / "checkpoints" / "step-4")
    assert not any(k.startswith("_orig_mod") for k in m.state_dict())
