"""What each CLI command does: load the config, check everything that can be checked without Ray,
claim the stage's output folder, connect Ray, call the component, print where the results are.
Each component receives only its own config section.

Order matters for failing fast and safe: a config error, a missing input, an unwritable `out`,
a model that does not fit the shards, or an output folder written by another config (outputs.py)
is reported before Ray starts (3-60 s) and before anything is written.

The commands that make outputs (data, train, finetune, tune, run) are here, with the helpers
every command uses; those that use a checkpoint (eval, generate, export, rate) are in
model_commands.py.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from raylm import config as C
from raylm import console, errors, outputs, storage, tracking
from raylm.root import RootConfig
from raylm.train.trainer import local_path


def load(args) -> RootConfig:
    cfg = C.load(RootConfig, args.config, args.overrides)
    if not storage.is_remote(cfg.out):  # where the full traceback of an unexpected error goes
        errors.LOG_DIR = Path(cfg.out) / "logs"
    return cfg


def _paths(cfg: RootConfig) -> dict[str, str]:
    """The run's folders: absolute local paths (Ray workers do not share the driver's working
    directory) or object-store URIs (`out: s3://bucket/run`)."""
    out = local_path(cfg.out)
    stages = {k: storage.join(out, k) for k in ("data", "train", "eval", "finetune", "tune")}
    shards = local_path(cfg.train.data_dir) if cfg.train.data_dir else storage.join(out, "data", "shards")
    return {"out": out, "shards": shards, **stages}


def _hold(args, cfg: RootConfig) -> None:
    """Before any work: `out` can be written, and no other raylm run is using it (outputs.lock:
    flock locally, a lease object on an object store)."""
    out = _paths(cfg)["out"]
    probe = storage.join(out, f".write-test-{id(cfg)}")
    try:
        storage.makedirs(out)
        if storage.is_remote(out):
            with tempfile.NamedTemporaryFile() as f:
                storage.upload(f.name, probe)
        else:
            Path(probe).write_text("")
        storage.delete(probe)
    except OSError as e:
        raise storage.access_error("out", cfg.out, e, "cannot write there") from None
    outputs.lock(out, args.command)


def _claim(args, cfg: RootConfig, stage: str, stage_dir: str, inputs: dict | None = None) -> None:
    """The stage folder is this config's (or --overwrite cleared it); the resolved config is
    saved beside it and at the top of `out`."""
    outputs.claim(stage_dir, outputs.record_of(cfg, stage, inputs), overwrite=getattr(args, "overwrite", False))
    for d in (_paths(cfg)["out"], stage_dir):
        C.save(cfg, storage.join(d, "config.yaml"))


def _scratch(cfg: RootConfig, *parts: str) -> Path:
    """A local folder for this run's copies (fetched checkpoints): under `out` when it is local,
    else node-local scratch (cluster.local_dir)."""
    out = _paths(cfg)["out"]
    if storage.is_remote(out):
        return storage.work_dir(out, cfg.cluster.local_dir).joinpath(*parts)
    return Path(out).joinpath(*parts)


@contextlib.contextmanager
def _writing(folder: str):
    """A local folder standing for `folder`: the folder itself, or (object store) a temp folder
    whose files are uploaded to it when the block ends."""
    if not storage.is_remote(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="raylm-out-") as d:
        yield Path(d)
        storage.Mirror(Path(d), folder)()


def _connect(args, cfg: RootConfig, labels: str) -> None:
    """Join or start Ray; then the `labels` selector (`data` / `train` / `eval`.label_selector)
    must match a node (cluster.check_labels), before any work waits for one."""
    from raylm.cluster import check_labels, connect

    connect(cfg.cluster, args.address)
    section, key = labels.split(".")
    check_labels(labels, getattr(getattr(cfg, section), key))


def check(args) -> None:
    print(C.dump_commented(load(args)), end="")


def data(args, cfg: RootConfig | None = None) -> dict:
    from raylm.data import pipeline
    from raylm.data.ingest.objstore import one_listing

    cfg = cfg or load(args)
    p = _paths(cfg)
    _hold(args, cfg)
    with one_listing():  # the checks and the run see one listing of every input folder
        pipeline.check_inputs(cfg.data, p["data"])
        _claim(args, cfg, "data", p["data"])
        _connect(args, cfg, "data.label_selector")
        m = pipeline.run(cfg.data, p["data"], cfg.seed)
    console.summary(f"[raylm] data done: {storage.join(p['data'], 'shards')} (manifest.json, tokenizer.json), stats in "
          f"{storage.join(p['data'], 'stats.json')}")
    return m


def _shards_ready(model_cfg, data_dir: str) -> dict:
    """The shards exist, are whole and fit the model: its input fingerprint for the stage
    record. Local shards: sizes and sha256 (once per file state); on an object store sizes here,
    and each worker checks the sha256 of the copies it makes (shards.localize)."""
    from raylm.data import shards
    from raylm.train.loop import resolve_model_config

    try:
        manifest = shards.read_manifest(data_dir)
        resolve_model_config(model_cfg, data_dir)
        shards.check(data_dir, full=not storage.is_remote(data_dir))
    except FileNotFoundError:
        raise
    except OSError as e:  # an unreachable or unauthorised bucket: one line naming the data folder
        raise storage.access_error("data folder (train.data_dir / finetune.data_dir, else <out>/data)",
                                   data_dir, e) from None
    return {"shards": outputs.shards_fingerprint(manifest)}


def train(args, cfg: RootConfig | None = None, init_from: str | None = None, stage: str = "train",
          data_dir: str | None = None) -> dict:
    from raylm.train.launch import storage_root
    from raylm.train.trainer import fit

    cfg = cfg or load(args)
    p = _paths(cfg)
    data_dir = local_path(data_dir) if data_dir else p["shards"]
    _hold(args, cfg)
    inputs = _shards_ready(cfg.model, data_dir)
    if init_from:
        inputs["init_from"] = _checkpoint_identity(init_from)
    _claim(args, cfg, stage, p[stage], inputs)
    if cfg.train.num_workers > 0:
        _connect(args, cfg, "train.label_selector")
    with tracking.run(cfg.tracking, p["out"], stage, C.to_dict(cfg)) as tracked:
        result = fit(cfg.model, cfg.train, data_dir, p[stage], cfg.seed, init_from=init_from,
                     storage_path=storage_root(cfg.cluster.storage_path, p["out"], stage),
                     scratch=cfg.cluster.local_dir,
                     lora=cfg.finetune.lora if stage == "finetune" and cfg.finetune.lora.on else None)
        if tracked:
            tracked.log_artifacts([storage.join(p[stage], "result.json"), storage.join(p[stage], "config.yaml")])
    m = result["metrics"] or {}
    console.summary(f"[raylm] {stage} done at step {m.get('step')}: val loss {m.get('val_loss', float('nan')):.4f} "
          f"(perplexity {m.get('val_ppl', float('nan')):.2f}); checkpoint {result['checkpoint']}; "
          f"TensorBoard: tensorboard --logdir {storage.join(p[stage], 'tb')}"
          + (f"; {m['device_hours']:.3g} device-hours, {m['energy_kwh']:.3g} kWh ({m['energy_method']}"
             f"{', an estimate from rated power' if m['energy_method'] == 'rated' else ''})"
             if "energy_kwh" in m else ""))
    return result


def _checkpoint_identity(path: str) -> str:
    """What a checkpoint is, for a stage record: its checksums (or its model.json when older)."""
    import hashlib

    from raylm.train.checkpoint import CHECKSUMS

    d = Path(path)
    listed = d / CHECKSUMS if (d / CHECKSUMS).is_file() else d / "model.json"
    return hashlib.sha256(listed.read_bytes()).hexdigest()[:16]


def finetune(args) -> dict:
    """Continued pretraining: the weights of `finetune.init_from` (default: this run's pretraining
    checkpoint), trained further with the `train` recipe on `finetune.data_dir`'s shards."""
    from raylm.train.checkpoint import fetch, read_model_config

    cfg = load(args)
    src = None if cfg.finetune.random_init else (cfg.finetune.init_from or _latest_checkpoint(cfg, "train"))
    if src:  # an s3:// or gs:// checkpoint is copied once (workers on other nodes read it from the
        # same path only when out is shared; on an object store, give finetune.init_from as a URI
        # that every node can fetch: see docs/clusters.md)
        src = str(Path(fetch(src, _scratch(cfg, "finetune", "init-checkpoint"))).resolve())
    if cfg.finetune.task == "classify":
        return _classify(args, cfg, src)
    cfg.model = read_model_config(src)  # the architecture is the checkpoint's
    data_dir = local_path(cfg.finetune.data_dir) if cfg.finetune.data_dir else _paths(cfg)["shards"]
    _same_tokenizer(Path(src), data_dir, cfg)
    return train(args, cfg, init_from=src, stage="finetune", data_dir=data_dir)


def _same_tokenizer(ck: Path, data_dir: str, cfg: RootConfig) -> None:
    """Continued pretraining reads token ids: the new shards must come from the checkpoint's own
    tokenizer (compared by content; a vocabulary of the same size can map ids to other strings)."""
    from tokenizers import Tokenizer

    from raylm.data.shards import read_manifest

    theirs = storage.read_text(storage.join(data_dir, read_manifest(data_dir)["tokenizer"]))
    if Tokenizer.from_str(theirs).to_str() != Tokenizer.from_str(_tokenizer_of(ck, cfg)).to_str():
        raise ValueError(f"the shards in {data_dir} were tokenized with another tokenizer than checkpoint {ck}: "
                         f"their token ids mean other strings. Rebuild them with data.tokenizer.path={ck} "
                         f"(the checkpoint's tokenizer)")


def _classify(args, cfg: RootConfig, src: str | None) -> dict:
    """Sequence classification: a head on the (pretrained) transformer, on labelled files."""
    from raylm.train.classify_driver import execute, prepare
    from raylm.train.launch import storage_root

    p = _paths(cfg)
    _hold(args, cfg)
    job, tok_path = prepare(cfg.finetune, cfg.train, p["finetune"], cfg.seed, src, cfg.model, p["shards"],
                            scratch=cfg.cluster.local_dir)
    _claim(args, cfg, "finetune", p["finetune"], {"init_from": _checkpoint_identity(src)} if src else {})
    if cfg.train.num_workers > 0:
        _connect(args, cfg, "train.label_selector")
    with tracking.run(cfg.tracking, p["out"], "finetune", C.to_dict(cfg)) as tracked:
        result = execute(job, tok_path, storage_root(cfg.cluster.storage_path, p["out"], "finetune"))
        if tracked:
            tracked.log_artifacts([storage.join(p["finetune"], n) for n in ("result.json", "report.md", "report.json")])
    console.summary(f"[raylm] classifier fine-tuned: report {storage.join(p['finetune'], 'report.md')}; "
          f"checkpoint {result.get('checkpoint')}")
    return result


def _latest_checkpoint(cfg: RootConfig, stage: str) -> str:
    res = storage.join(_paths(cfg)[stage], "result.json")
    if not storage.is_file(res):
        raise FileNotFoundError(f"no checkpoint given (eval.checkpoint) and no {res}: run `raylm {stage}` first")
    ck = json.loads(storage.read_text(res)).get("checkpoint")
    if not ck:
        raise FileNotFoundError(f"{res} names no checkpoint (did training reach an eval_interval?)")
    return ck


def _newest(cfg: RootConfig, language_model: bool = False) -> str:
    """The run's newest checkpoint: fine-tuning's when it ran, else pretraining's. With
    `language_model`, a classifier fine-tune is passed over for the pretrained model."""
    p = _paths(cfg)
    if storage.is_file(storage.join(p["finetune"], "result.json")):
        ck = _latest_checkpoint(cfg, "finetune")
        if not (language_model and _is_classifier(ck)):
            return ck
    return _latest_checkpoint(cfg, "train")


def _is_classifier(ck: str) -> bool:
    return json.loads(storage.read_text(storage.join(ck, "model.json"))).get("task") == "classify"


def _local_checkpoint(ck: str, cache: Path) -> Path:
    """A checkpoint as a local folder (an s3:// or gs:// one is copied once under `cache`)."""
    from raylm.train.checkpoint import fetch

    return Path(fetch(ck, cache)).resolve()


def _tokenizer_of(ck: Path, cfg: RootConfig) -> str:
    """The tokenizer a checkpoint was trained with: its own copy, else its shards' (older
    checkpoints), else this run's shards'."""
    from raylm.data.shards import read_manifest

    if (ck / "tokenizer.json").is_file():
        return (ck / "tokenizer.json").read_text()
    meta = json.loads((ck / "model.json").read_text())
    for d in (meta.get("data_dir"), _paths(cfg)["shards"]):
        if d and storage.is_file(storage.join(d, "manifest.json")):
            return storage.read_text(storage.join(d, read_manifest(d)["tokenizer"]))
    raise FileNotFoundError(f"{ck} holds no tokenizer.json and its shards are gone: cannot decode its tokens")


def tune(args) -> None:
    from raylm.tune.sweep import run as run_sweep

    cfg = load(args)
    _hold(args, cfg)
    run_sweep(cfg, args.address, resume=args.resume, overwrite=getattr(args, "overwrite", False))


def run_all(args) -> None:
    import time

    from raylm.model_commands import evaluate

    cfg = load(args)
    wall = {}
    t0 = time.perf_counter()
    data(args, cfg)
    wall["data"], t0 = time.perf_counter() - t0, time.perf_counter()
    train(args, cfg)
    wall["train"], t0 = time.perf_counter() - t0, time.perf_counter()
    report = evaluate(args, cfg)
    wall["eval"] = time.perf_counter() - t0
    took = ", ".join(f"{k} {console.duration(v)}" for k, v in wall.items())
    console.summary(f"\n[raylm] finished in {console.duration(sum(wall.values()))} ({took}). What you have:")
    console.summary(f"  {cfg.out}/data/shards   token shards, manifest.json, tokenizer.json; stats in data/stats.json")
    console.summary(f"  {cfg.out}/train         checkpoints (Ray Train), TensorBoard events in train/tb")
    sets = "".join(f" --set {o}" for o in args.overrides)
    if "mlm" in report:  # an encoder: fine-tune it; it does not generate
        r = report["mlm"]
        console.summary(f"  {cfg.out}/eval          report.md / report.json: masked-token accuracy "
                        f"{r['masked_accuracy']:.3f} (loss {r['masked_loss']:.3f} nats)")
        console.summary("[raylm] next:")
        console.summary(f"  raylm finetune {args.config}{sets} --set finetune.task=classify ...   a classifier on it")
    else:
        r = report["lm"]
        console.summary(f"  {cfg.out}/eval          report.md / report.json: validation perplexity "
                        f"{r['perplexity']:.2f} (lower is better; {r['bits_per_byte']:.2f} bits per byte) and "
                        "generated samples")
        console.summary("[raylm] next:")
        console.summary(f"  raylm generate {args.config}{sets} --prompt \"...\"     continue a prompt "
                        "(or --interactive)")
        console.summary(f"  raylm export {args.config}{sets} --out {cfg.out}/hf      the model for transformers")
    if cfg.tracking.backend == "mlflow":
        console.summary(f"  mlflow ui --backend-store-uri {tracking.store(cfg.tracking, cfg.out)[0]}      "
                        "the tracked runs (the UI needs the full mlflow package)")
    console.summary(f"  tensorboard --logdir {cfg.out}/train/tb")
