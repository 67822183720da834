"""What each CLI command does: load the config, connect Ray, call the component, print where
the results are. Each component receives only its own config section."""

from __future__ import annotations

import json
from pathlib import Path

from raylm import config as C
from raylm.root import RootConfig


def load(args) -> RootConfig:
    return C.load(RootConfig, args.config, args.overrides)


def _paths(cfg: RootConfig) -> dict[str, Path]:
    # Absolute: Ray workers do not share the driver's working directory.
    out = Path(cfg.out).resolve()
    return {"out": out, "data": out / "data",
            "shards": Path(cfg.train.data_dir).resolve() if cfg.train.data_dir else out / "data" / "shards",
            "train": out / "train", "eval": out / "eval", "finetune": out / "finetune"}


def _save(cfg: RootConfig, *dirs: Path) -> None:
    for d in dirs:
        C.save(cfg, d / "config.yaml")


def check(args) -> None:
    print(C.dump(load(args)), end="")


def data(args, cfg: RootConfig | None = None) -> dict:
    from raylm.cluster import connect
    from raylm.data import pipeline

    cfg = cfg or load(args)
    p = _paths(cfg)
    _save(cfg, p["out"], p["data"])
    connect(cfg.cluster, args.address)
    m = pipeline.run(cfg.data, p["data"], cfg.seed)
    print(f"[raylm] data done: {p['data'] / 'shards'} (manifest.json, tokenizer.json), stats in "
          f"{p['data'] / 'stats.json'}")
    return m


def _start_stage(args, cfg: RootConfig, stage: str) -> str:
    """Save the resolved config beside the stage's output, join Ray when the stage uses Ray Train
    workers, and return where Ray Train persists the run (launch.storage_root)."""
    from raylm.train.launch import storage_root

    p = _paths(cfg)
    _save(cfg, p["out"], p[stage])
    if cfg.train.num_workers > 0:
        from raylm.cluster import connect

        connect(cfg.cluster, args.address)
    return storage_root(cfg.cluster.storage_path, p["out"], stage)


def train(args, cfg: RootConfig | None = None, init_from: str | None = None, stage: str = "train",
          data_dir: str | None = None) -> dict:
    from raylm.train.trainer import fit

    cfg = cfg or load(args)
    p = _paths(cfg)
    storage = _start_stage(args, cfg, stage)
    data_dir = str(Path(data_dir).resolve()) if data_dir else None
    result = fit(cfg.model, cfg.train, data_dir or str(p["shards"]), str(p[stage]), cfg.seed, init_from=init_from,
                 storage_path=storage)
    m = result["metrics"] or {}
    print(f"[raylm] {stage} done at step {m.get('step')}: val loss {m.get('val_loss', float('nan')):.4f} "
          f"(perplexity {m.get('val_ppl', float('nan')):.2f}); checkpoint {result['checkpoint']}; "
          f"TensorBoard: tensorboard --logdir {p[stage] / 'tb'}")
    return result


def finetune(args) -> dict:
    """Continued pretraining: the weights of `finetune.init_from` (default: this run's pretraining
    checkpoint), trained further with the `train` recipe on `finetune.data_dir`'s shards."""
    from raylm.train.checkpoint import fetch, read_model_config

    cfg = load(args)
    src = None if cfg.finetune.random_init else (cfg.finetune.init_from or _latest_checkpoint(cfg, "train"))
    if src:  # an s3:// or gs:// checkpoint is copied once under out (which every node sees)
        src = fetch(src, _paths(cfg)["finetune"] / "init-checkpoint")
    if cfg.finetune.task == "classify":
        return _classify(args, cfg, src)
    cfg.model = read_model_config(src)  # the architecture is the checkpoint's
    return train(args, cfg, init_from=src, stage="finetune", data_dir=cfg.finetune.data_dir)


def _classify(args, cfg: RootConfig, src: str | None) -> dict:
    """Sequence classification: a head on the (pretrained) transformer, on labelled files."""
    from raylm.train.finetune import run_classify

    p = _paths(cfg)
    storage = _start_stage(args, cfg, "finetune")
    result = run_classify(cfg.finetune, cfg.train, str(p["finetune"]), cfg.seed, init_from=src,
                          model_cfg=cfg.model, storage_path=storage, data_dir=str(p["shards"]))
    print(f"[raylm] classifier fine-tuned: report {p['finetune'] / 'report.md'}; checkpoint {result.get('checkpoint')}")
    return result


def _latest_checkpoint(cfg: RootConfig, stage: str) -> str:
    res = _paths(cfg)[stage] / "result.json"
    if not res.is_file():
        raise FileNotFoundError(f"no checkpoint given (eval.checkpoint) and no {res}: run `raylm {stage}` first")
    ck = json.loads(res.read_text()).get("checkpoint")
    if not ck:
        raise FileNotFoundError(f"{res} names no checkpoint (did training reach an eval_interval?)")
    return ck


def evaluate(args, cfg: RootConfig | None = None) -> dict:
    from raylm.eval import lm
    from raylm.train.checkpoint import fetch

    cfg = cfg or load(args)
    p = _paths(cfg)
    _save(cfg, p["eval"])
    stage = "finetune" if (p["finetune"] / "result.json").is_file() else "train"
    data_dir = cfg.finetune.data_dir if stage == "finetune" and cfg.finetune.data_dir else str(p["shards"])
    # an s3:// or gs:// checkpoint (cluster.storage_path on an object store) is copied once under out
    ck = fetch(cfg.eval.checkpoint or _latest_checkpoint(cfg, stage), p["eval"] / "checkpoint")
    report = lm.run(cfg.eval, ck, data_dir, p["eval"], cfg.seed)
    r = report["lm"]
    print(f"[raylm] eval on {r['split']}: loss {r['loss']:.4f} nats/token, perplexity {r['perplexity']:.2f}, "
          f"{r['bits_per_byte']:.3f} bits per byte ({r['tokens_scored']:,} tokens)")
    print(f"[raylm] report: {p['eval'] / 'report.md'} (samples included)")
    return report


def rate(args) -> dict:
    """Read filled human-evaluation sheets back: mean scores per model, agreement between raters."""
    from raylm.eval import human

    cfg = load(args)
    h = cfg.eval.human
    if not h.sheets:
        raise ValueError("eval.human.sheets is empty: list the filled rating sheets (CSV) to read")
    out = _paths(cfg)["eval"]
    s = human.report(h.sheets, h.key, out)
    print(human.summary_markdown(s))
    print(f"[raylm] human evaluation report: {out / 'human_report.md'}")
    return s


def tune(args) -> None:
    from raylm.tune.sweep import run as run_sweep

    cfg = load(args)
    run_sweep(cfg, args.config, args.overrides, args.address, resume=args.resume)


def run_all(args) -> None:
    cfg = load(args)
    data(args, cfg)
    train(args, cfg)
    report = evaluate(args, cfg)
    r = report["lm"]
    print("\n[raylm] finished. What you have:")
    print(f"  {cfg.out}/data/shards   token shards + manifest.json + tokenizer.json; stats in data/stats.json")
    print(f"  {cfg.out}/train         checkpoints (Ray Train), TensorBoard events in train/tb")
    print(f"  {cfg.out}/eval          report.md / report.json: validation perplexity {r['perplexity']:.2f} "
          f"(lower is better; {r['bits_per_byte']:.2f} bits per byte) and generated samples")
