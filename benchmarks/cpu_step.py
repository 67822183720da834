"""raylm's CPU training step against nanoGPT's own `train.py`, side by side in one run (issue 28).

nanoGPT's CPU shakespeare-char configuration, as its README gives it (4 layers, 4 heads, 128
wide, context 64, batch 12, dropout 0, fp32, no torch.compile), trained by:

- `nanogpt`: nanoGPT's `train.py` itself (benchmarks/reference/nanogpt, unmodified), a
  subprocess; its per-iteration `time ...ms` lines are the step time (data sampling included);
- `raylm`: raylm's loop in this process (`train.num_workers: 0`), eager, its default
  `train.cpu_matmul: auto` (Linear layers on oneDNN's kernels, raylm/model/linear.py);
- `raylm_blas`: the same with `train.cpu_matmul: blas` (torch's own fp32 matmul, MKL: the
  path nanoGPT takes, and raylm's before oneDNN);
- `raylm_compile`: `raylm` with `train.compile: true` (torch.compile, Inductor's C++ kernels);
- `ray_train`, `ray_train_blas`, `ray_train_compile`: the same three under Ray Train (1 worker
  x all CPUs, gloo).

Every arm trains `--iters` steps; steady-state tokens/s is the median over the steps after
`--skip` (raylm: its logging windows; nanoGPT: its per-step times). The arms run in `--rounds`
rounds, reversed every other round (A B C D E, E D C B A) so a drift of this VM cancels; Ray is
up for all of them, as in any raylm run. The fp32 matmul peak (2048^3 torch.matmul, same
threads) is measured before and after; the larger is the denominator. So is oneDNN's 2048^3
fp32 product (`onednn_peak`): on AMD CPUs MKL takes its AVX2 path, and oneDNN's AVX-512 kernel
runs about twice as fast, so utilisation is also given over that, the best fp32 product this
machine was seen to run.

Figures (benchmarks/results/cpu_step.json):
- `cpu_flops_utilisation`: model FLOP/s of raylm under Ray Train with its defaults (`ray_train`)
  over the torch.matmul peak (the count the issue set its 0.55 target in); every arm over both
  peaks. Model FLOPs per token are raylm's `GPT.flops_per_token` (6N + 12LTC), checked here
  against nanoGPT's own `estimate_mfu` formula on nanoGPT's model of the same shape.
- `cpu_step_vs_nanogpt`: raylm's steady tokens/s in process with its defaults over nanoGPT's
  `train.py`; also every other arm.
- `ray_train_startup_s`: seconds from `fit()` to the first training step under Ray Train, minus
  the same in process (Ray Train's controller, worker and process-group start-up; the model,
  data and compile costs are in both); the seconds after the last metrics row (final evaluation
  and checkpoint, then Ray Train's wind-down: `ray_train_poll_2s` runs with Ray's default 2 s
  controller poll instead of raylm's 0.5 s); whole-run seconds of every arm.
- `profile`: where one step's time goes (torch.profiler, 30 steps in process, eager and compiled):
  matrix multiplies, attention, optimizer, the rest, and the top operators; raylm's defaults
  (eager and compiled) and `cpu_matmul: blas` (eager).

  .venv/bin/python -m benchmarks.cpu_step              # ~10 min on 2 idle cores
  .venv/bin/python -m benchmarks.cpu_step --quick      # a minute: plumbing only, numbers meaningless
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import write_result
from benchmarks.shakespeare_char import matmul_peak, metrics_rows, prepare, steady_tokens_per_s
from raylm.model.gpt import GPT, GPTConfig
from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
from raylm.train.trainer import fit

REPO = Path(__file__).resolve().parents[1]
NANOGPT = REPO / "benchmarks" / "reference" / "nanogpt"
SHAPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12}
TOKENS_PER_STEP = SHAPE["batch_size"] * SHAPE["block_size"]
# Ray's own default poll of the Train controller (raylm's launch sets 0.5 s): a finished run
# waits for the next poll.
RAY_DEFAULT_POLL = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2.0"}
ITER = re.compile(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"))
    p.add_argument("--iters", type=int, default=600, help="training steps per arm")
    p.add_argument("--skip", type=int, default=150, help="steps left out of the steady state (warm-up, compile)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--profile-steps", type=int, default=30)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.iters, a.skip, a.rounds, a.profile_steps = 60, 20, 1, 5
    return a


# ------------------------------------------------------------------ nanoGPT's train.py


def nanogpt_data(text: str, work: Path) -> Path:
    """nanoGPT's data/shakespeare_char/prepare.py output (train.bin, val.bin, meta.pkl) in `work`,
    with nanoGPT's configurator.py beside it (train.py reads both from its working directory)."""
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    d = work / "data" / "shakespeare_char"
    d.mkdir(parents=True, exist_ok=True)
    n = len(text)
    for name, part in (("train", text[: int(n * 0.9)]), ("val", text[int(n * 0.9):])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(d / f"{name}.bin")
    with open(d / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    shutil.copy(NANOGPT / "configurator.py", work / "configurator.py")
    return work


def run_nanogpt(work: Path, iters: int, skip: int) -> dict:
    """nanoGPT's README CPU command (plus fp32 and a single evaluation, at step 0)."""
    cmd = [sys.executable, str(NANOGPT / "train.py"), str(NANOGPT / "config" / "train_shakespeare_char.py"),
           "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
           *(f"--{k}={v}" for k, v in SHAPE.items()), f"--max_iters={iters}", "--lr_decay_iters=2000",
           "--dropout=0.0", "--dtype=float32", f"--eval_interval={10 ** 9}", f"--out_dir={work / 'out'}"]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"nanoGPT train.py failed: {out.stderr[-2000:]}")
    dts = {int(m[1]): float(m[2]) / 1e3 for m in map(ITER.match, out.stdout.splitlines()) if m}
    steady = [dt for i, dt in dts.items() if i > skip]
    return {"tokens_per_s": TOKENS_PER_STEP / statistics.median(steady), "wall_s": wall, "steps": len(dts)}


def nanogpt_flops_per_token() -> float:
    """nanoGPT's own count (model.py estimate_mfu: 6N + 12 L H Q T, N without position embeddings)
    on nanoGPT's model of this shape."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", NANOGPT / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.GPTConfig(vocab_size=65, bias=False, dropout=0.0,
                        **{k: v for k, v in SHAPE.items() if k != "batch_size"})
    m = mod.GPT(cfg)
    L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
    return 6 * m.get_num_params() + 12 * L * H * Q * T


# ------------------------------------------------------------------ raylm


def model_cfg() -> GPTConfig:
    return GPTConfig(n_layer=SHAPE["n_layer"], n_head=SHAPE["n_head"], n_embd=SHAPE["n_embd"],
                     block_size=SHAPE["block_size"], dropout=0.0, bias=False)


def train_cfg(iters: int, workers: int, threads: int, compile_: bool, matmul: str = "auto") -> TrainConfig:
    """nanoGPT's recipe (lr 1e-3 cosine to 1e-4, warmup 100, beta2 0.99, clip 1, wd 0.1)."""
    return TrainConfig(max_steps=iters, batch_size=SHAPE["batch_size"], grad_clip=1.0, eval_interval=iters,
                       eval_batches=20, log_interval=25, num_workers=workers, cpus_per_worker=threads,
                       keep_checkpoints=1, compile=compile_, cpu_matmul=matmul,
                       optim=OptimConfig(lr=1e-3, weight_decay=0.1, beta2=0.99),
                       schedule=ScheduleConfig(warmup_steps=min(100, iters // 2), min_lr=1e-4, decay_steps=2000))


def run_raylm(data: Path, out: Path, iters: int, skip: int, workers: int, threads: int, compile_: bool,
              env: dict | None = None, matmul: str = "auto") -> dict:
    """One raylm run; `env`: Ray Train settings for this run only (set in this driver, which
    passes them to Ray Train's controller)."""
    shutil.rmtree(out, ignore_errors=True)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    t = time.time()
    try:
        fit(model_cfg(), train_cfg(iters, workers, threads, compile_, matmul), str(data), str(out), 1337)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    wall = time.time() - t
    tps = steady_tokens_per_s(out, skip)
    rows = metrics_rows(out)
    first = next(r for r in rows if "tokens_per_s" in r)
    # the first row is written after `step` steps; at the steady rate those took step x tokens / tps
    startup = first["time"] - t - first["step"] * TOKENS_PER_STEP / tps
    # after the last row: the final evaluation and checkpoint, then Ray Train's wind-down
    return {"tokens_per_s": tps, "wall_s": wall, "startup_s": startup, "after_last_row_s": t + wall - rows[-1]["time"],
            "steps": rows[-1]["step"]}


def profile_step(data: Path, steps: int, threads: int, compile_: bool, matmul: str = "auto") -> dict:
    """Where one in-process training step's time goes: raylm's loop parts (begin_step, forward,
    backward, optimizer_step) on its Loader, under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    from raylm.model import linear
    from raylm.train.data import Loader, TokenWindows
    from raylm.train.worker import begin_step, optimizer_step
    from raylm.train.optim import build_optimizer, decay_groups

    torch.set_num_threads(threads)
    linear.use(matmul)
    cfg = train_cfg(1000, 0, threads, compile_, matmul)
    mcfg = model_cfg().with_vocab(65, "the character tokenizer")
    raw = GPT(mcfg)
    model = torch.compile(raw) if compile_ else raw
    opt = build_optimizer(decay_groups(raw, cfg.optim.weight_decay), cfg.optim)
    loader = Loader(TokenWindows(str(data), "train", mcfg.block_size, 1337), cfg.batch_size, 0, 1)

    def step(i: int) -> None:
        begin_step(opt, cfg, 1337, 0, i)
        x, y = next(loader)
        _, loss = model(x, y)
        loss.backward()
        optimizer_step(model, opt, cfg.grad_clip)

    for i in range(20):  # warm-up (and compile)
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step(20 + i)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)

    def group(name: str) -> str:
        if name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "mkldnn::_linear_pointwise",
                    "raylm::onednn_mm"):
            return "matmul"
        if "scaled_dot_product" in name or "flash_attention" in name:
            return "attention"
        if "adam" in name.lower() or name.startswith("Optimizer."):
            return "optimizer"
        if "CompiledFxGraph" in name or "Torch-Compiled" in name:
            return "compiled kernels (fused elementwise, norms, GELU)"
        return "other (eager elementwise, norms, GELU, autograd, Python)"

    shares: dict[str, float] = {}
    for e in events:
        shares[group(e.key)] = shares.get(group(e.key), 0.0) + e.self_cpu_time_total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    linear.use("auto")
    return {"ms_per_step": total / 1e3 / steps, "compile": compile_, "cpu_matmul": matmul,
            "share": {k: round(v / total, 4) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": e.key[:70], "ms_per_step": round(e.self_cpu_time_total / 1e3 / steps, 3),
                         "share": round(e.self_cpu_time_total / total, 4), "calls_per_step": e.count / steps}
                        for e in top]}


def main() -> None:
    a = parse()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    threads = os.cpu_count() or 1
    text = Path(a.data).read_text(encoding="utf-8")
    work = Path(tempfile.mkdtemp(prefix="raylm-cpustep-"))
    data = prepare(text, work / "shards")
    ngwork = nanogpt_data(text, work / "nanogpt")
    peaks, onednn_peaks = [matmul_peak(threads)], [matmul_peak(threads, onednn=True)]
    flops_tok = GPT(model_cfg().with_vocab(65, "chars")).flops_per_token()
    flops_tok_nanogpt = nanogpt_flops_per_token()
    profiles = [profile_step(data, a.profile_steps, threads, c, m)
                for c, m in ((False, "auto"), (True, "auto"), (False, "blas"))]
    from raylm.cluster import ClusterConfig, connect

    connect(ClusterConfig())
    arms = {
        "nanogpt": lambda: run_nanogpt(ngwork, a.iters, a.skip),
        "raylm": lambda: run_raylm(data, work / "raylm", a.iters, a.skip, 0, threads, False),
        "raylm_blas": lambda: run_raylm(data, work / "raylm_b", a.iters, a.skip, 0, threads, False, matmul="blas"),
        "raylm_compile": lambda: run_raylm(data, work / "raylm_c", a.iters, a.skip, 0, threads, True),
        "ray_train": lambda: run_raylm(data, work / "ray", a.iters, a.skip, 1, threads, False),
        "ray_train_blas": lambda: run_raylm(data, work / "ray_b", a.iters, a.skip, 1, threads, False,
                                            matmul="blas"),
        "ray_train_compile": lambda: run_raylm(data, work / "ray_c", a.iters, a.skip, 1, threads, True),
        "ray_train_poll_2s": lambda: run_raylm(data, work / "ray_p", a.iters, a.skip, 1, threads, False,
                                               RAY_DEFAULT_POLL),
    }
    runs: dict[str, list[dict]] = {k: [] for k in arms}
    order = list(arms)
    for r in range(a.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            runs[name].append(arms[name]())
            print(f"[cpu_step] round {r + 1} {name}: {runs[name][-1]}", flush=True)
    ray.shutdown()
    peaks.append(matmul_peak(threads))
    onednn_peaks.append(matmul_peak(threads, onednn=True))
    peak, onednn_peak = max(peaks), max(onednn_peaks)
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0] if m != "steps"} for k, v in runs.items()}
    tps = {k: v["tokens_per_s"] for k, v in med.items()}
    util = {k: tps[k] * flops_tok / peak for k in arms}
    util_onednn = {k: tps[k] * flops_tok / onednn_peak for k in arms}
    startup_ray = med["ray_train"]["startup_s"] - med["raylm"]["startup_s"]
    common = {"config": {**SHAPE, "dropout": 0.0, "dtype": "fp32", "threads": threads, "iters": a.iters,
                         "skip": a.skip, "rounds": a.rounds, "quick": a.quick},
              "tokens_per_s": tps, "runs": runs}
    records = [
        {"metric": "cpu_flops_utilisation", "value": util["ray_train"],
         "unit": "model FLOP/s over the fp32 torch.matmul peak (raylm under Ray Train, its defaults)",
         "baseline": {"name": "fp32 2048^3 torch.matmul peak (FLOP/s)", "value": peak},
         "target": 0.55, "by_arm": util, "peaks": peaks,
         "onednn_peak": onednn_peak, "onednn_peaks": onednn_peaks, "value_over_onednn_peak": util_onednn["ray_train"],
         "by_arm_over_onednn_peak": util_onednn,
         "flops_per_token": flops_tok, "flops_per_token_nanogpt_formula": flops_tok_nanogpt,
         "profile": profiles, **common},
        {"metric": "cpu_step_vs_nanogpt", "value": tps["raylm"], "unit": "tokens/s (steady state, raylm's defaults)",
         "baseline": {"name": "nanoGPT train.py, same shape, same machine, same run", "value": tps["nanogpt"]},
         "ratios": {k: tps[k] / tps["nanogpt"] for k in arms}, **common},
        {"metric": "ray_train_startup_s", "value": startup_ray,
         "unit": "seconds from fit() to the first step, Ray Train minus in process (eager)",
         "baseline": {"name": "in process, fit() to the first step", "value": med["raylm"]["startup_s"]},
         "startup_s": {k: v["startup_s"] for k, v in med.items() if "startup_s" in v},
         "after_last_row_s": {k: v["after_last_row_s"] for k, v in med.items() if "after_last_row_s" in v},
         "wall_s": {k: v["wall_s"] for k, v in med.items()}, **common},
    ]
    write_result("cpu_step" + ("_quick" if a.quick else ""), records)
    print(json.dumps({"utilisation": util, "utilisation_over_onednn_peak": util_onednn, "tokens_per_s": tps,
                      "ray_train_startup_s": startup_ray,
                      "flops_per_token": [flops_tok, flops_tok_nanogpt]}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
