"""`raylm data`: ingest -> stages (order from the YAML) -> split -> tokenizer -> shards + manifest.

The map from a stage name to its config and function is the STEPS dict below (no registry).
All document data lives in Ray Data blocks; the driver holds configs, per-block stats rows and
per-shard metadata rows, plus (for BPE only) the tokenizer's training sample (see tokenize.py).
The cleaned documents are materialised once in the object store (it spills to disk when full):
the kept documents' text plus a small row of counts per dropped document. Memory at 1x and 10x
input: benchmarks/clean_memory.py.

Retry-safety: a finished run leaves `manifest.json` plus a fingerprint of the config; a rerun
with the same config returns at once. An interrupted run recomputes documents (all stages are
deterministic functions of the input and the seed) and skips every shard already marked done,
so the final shards are byte-identical to an uninterrupted run (tested with a real SIGKILL:
tests/integration/test_data_kill_rerun.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from raylm import atomic
from raylm.config import dump
from raylm.data import shards, stats
from raylm.data.augment import AugmentConfig
from raylm.data.content import ContentConfig
from raylm.data.decontam import DecontamConfig
from raylm.data.dedup.stage import DedupConfig
from raylm.data.extract import ExtractConfig
from raylm.data.ingest.crawl import CrawlConfig
from raylm.data.ingest.files import FilesConfig
from raylm.data.ingest.warc import WarcConfig
from raylm.data.langid import LangIdConfig
from raylm.data.normalise import NormaliseConfig
from raylm.data.pii import PiiConfig
from raylm.data.quality import QualityConfig
from raylm.data.schema import DOC_COLUMNS, conform, kept_mask
from raylm.data.shards import ShardConfig
from raylm.data.tokenize import EOS, TokenizerConfig, token_dtype

log = logging.getLogger(__name__)


@dataclass
class IngestConfig:
    files: FilesConfig = field(default_factory=FilesConfig)  # txt / jsonl / parquet inputs
    warc: WarcConfig = field(default_factory=WarcConfig)     # WARC / WET files (used when paths given)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)  # web crawl (used when seeds/sitemap given)


@dataclass
class SplitConfig:
    val_fraction: float = 0.1   # share of documents held out for validation (by document, never split)

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class DataConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    steps: list[str] = field(default_factory=list)  # cleaning stages, in order; names are keys of STEPS
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    # Node labels every data task and actor needs (Ray Data's execution label selector), e.g.
    # {raylm-role: data} to keep data stages off GPU nodes; {} = any node. Placement only:
    # not part of the output fingerprint.
    label_selector: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ValueError(f"steps: unknown stage {unknown[0]!r}; valid stages: {', '.join(STEPS)}")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps: a stage is listed twice: {self.steps}")
        if "decontam" in self.steps and not self.decontam.paths:
            raise ValueError("steps: decontam is listed but data.decontam.paths is empty: name the "
                             "benchmark files whose text must not be trained on")
        if "augment" in self.steps and self.steps[-1] != "augment":
            raise ValueError("steps: augment must be the last stage (it runs after dedup and the "
                             "train/val split, on the train split only)")


# stage name -> import path of its run(ds, cfg) function; its config is DataConfig.<name>.
# Imports are lazy so config loading stays fast. The usual order is the order below.
STEPS: dict[str, str] = {
    "extract": "raylm.data.extract:run",       # HTML -> title + main text
    "normalise": "raylm.data.normalise:run",   # ftfy, Unicode form, control chars, whitespace
    "langid": "raylm.data.langid:run",         # language + score, filter
    "quality": "raylm.data.quality:run",       # Gopher / C4 / FineWeb heuristics
    "content": "raylm.data.content:run",       # domain blocklist, word lists
    "decontam": "raylm.data.decontam:run",     # drop documents holding benchmark text (n-gram overlap)
    "pii": "raylm.data.pii:run",               # redact e-mail, phone, IP, card, SSN, IBAN
    "dedup": "raylm.data.dedup.stage:run",     # exact + MinHash near-duplicates (workdir: <out>/dedup)
    "augment": "raylm.data.augment:run",       # train split only; always last
}


def assign_split(batch: pa.Table, val_fraction: float, seed: int) -> pa.Table:
    """Add `split` ("train" / "val") from a seeded hash of each document id."""
    ids = batch["id"].to_pylist()
    cut = int(val_fraction * 2**64)
    splits = ["val" if int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "little")
              < cut else "train" for i in ids]
    return batch.append_column("split", pa.array(splits, type=pa.string()))


def fingerprint(cfg: DataConfig, seed: int) -> str:
    return hashlib.sha256(f"{seed}\n{dump(replace(cfg, label_selector={}))}".encode()).hexdigest()[:16]


@contextlib.contextmanager
def placement(label_selector: dict[str, str]):
    """Ray Data runs every task and actor (maps, shuffles, joins, reads, writes) started in this
    block on nodes with these labels; the previous selector is restored after."""
    from ray.data import DataContext

    opts = DataContext.get_current().execution_options
    before = opts.label_selector
    if label_selector:
        opts.label_selector = {**(before or {}), **label_selector}
    try:
        yield
    finally:
        opts.label_selector = before


def _import(path: str):
    mod, fn = path.rsplit(":", 1)
    return getattr(__import__(mod, fromlist=[fn]), fn)


def run(cfg: DataConfig, out: str | Path, seed: int = 1337) -> dict:
    """Run the data pipeline into `<out>`; returns the manifest. Skips if already complete."""
    with placement(cfg.label_selector):
        return _run(cfg, out, seed)


def _run(cfg: DataConfig, out: str | Path, seed: int) -> dict:
    import ray

    from raylm.data.tokenize import Encoder, char_set, char_tokenizer, train_bpe

    out = Path(out)
    shard_dir = out / "shards"
    fp = fingerprint(cfg, seed)
    if (shard_dir / shards.MANIFEST).exists():
        m = shards.read_manifest(shard_dir)
        if m.get("fingerprint") == fp:
            log.info("data already complete in %s (same config); skipping", shard_dir)
            return m
    shard_dir.mkdir(parents=True, exist_ok=True)
    # A run killed mid-write leaves its writers' temps (raylm.atomic); the rename never happened,
    # so they are garbage. One `raylm data` per output folder: no writer is live now.
    for d in (out, shard_dir):
        atomic.sweep(d)
    t0 = time.time()

    # 1. ingest + stages. Checked before any work: inputs exist.
    # Documents are read once; stats, tokenizer and shards reuse them. Dropped rows are kept for
    # the stats, without their text, so the object store holds the kept documents' text only.
    ds = documents(cfg, out, seed).map_batches(_blank_dropped, batch_format="pyarrow").materialize()

    report = stats.merge([r["stats"] for r in ds.map_batches(stats.partial, batch_format="pyarrow")
                          .take_all()], cfg.steps)
    print(stats.table(report), flush=True)
    n_train = report["split_documents"].get("train", 0)
    n_val = report["split_documents"].get("val", 0)
    if n_train == 0 or n_val == 0:
        raise ValueError(f"after cleaning, {report['documents_kept']} documents remain: {n_train} train, "
                         f"{n_val} validation. Both splits need documents: add input, relax filters or "
                         f"change data.split.val_fraction")
    docs = ds.map_batches(lambda b: b.filter(kept_mask(b)), batch_format="pyarrow")

    # 2. tokenizer
    tok_path = shard_dir / "tokenizer.json"
    if cfg.tokenizer.path:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(cfg.tokenizer.path)
        if tok.token_to_id(EOS) is None:
            raise ValueError(f"data.tokenizer.path {cfg.tokenizer.path} has no {EOS} token")
    elif cfg.tokenizer.kind == "char":
        rows = docs.map_batches(char_set, batch_format="pyarrow").take_all()
        tok = char_tokenizer("".join(r["chars"] for r in rows))
    else:
        train_docs = docs.map_batches(lambda b: b.filter(pa.compute.equal(b["split"], "train")).select(["text"]),
                                      batch_format="pyarrow")
        tok = train_bpe(_sample_texts(train_docs, cfg.tokenizer.sample_bytes), cfg.tokenizer)
    tok_json = tok.to_str()
    atomic.write_text(tok_path, tok_json)
    vocab_size = tok.get_vocab_size()
    dtype = token_dtype(vocab_size).name
    log.info("tokenizer: %s, vocab %d", cfg.tokenizer.kind, vocab_size)

    # 3. encode, count tokens per split, assign shards, write each shard in one task
    keep = ("id", "split", "source", "uri", "url", "license", "content_type", "fetched_at", "lang",
            "augmented_from", "augment_op")  # provenance into the shard index, where present
    enc = docs.map_batches(Encoder, fn_constructor_args=(tok_json, keep), batch_format="pyarrow",
                           concurrency=(1, max(1, int(ray.available_resources().get("CPU", 1)))),
                           num_cpus=0.5).materialize()
    per_split = {"train": 0, "val": 0}
    for r in enc.map_batches(_token_sums, batch_format="pyarrow").take_all():
        per_split[r["split"]] += r["n"]
    n_shards = {s: cfg.shards.num_shards or max(1, math.ceil(n / cfg.shards.shard_tokens))
                for s, n in per_split.items()}
    enc = enc.map_batches(_add_shard, fn_args=(n_shards, seed), batch_format="pyarrow")
    pause_s = float(os.environ.get("RAYLM_SHARD_PAUSE_S", "0"))  # test hook, see _write_shard
    meta = (enc.groupby("shard", num_partitions=sum(n_shards.values()))
            .map_groups(_write_shard, fn_args=(str(shard_dir), dtype, pause_s), batch_format="pyarrow").take_all())
    # stats.json before the manifest: the manifest is written last, its presence means "complete".
    report["seconds"] = round(time.time() - t0, 2)
    atomic.write_text(out / "stats.json", json.dumps(report, indent=2))
    manifest = shards.write_manifest(
        shard_dir, [dict(m) for m in meta], dtype=dtype, vocab_size=vocab_size, eos_id=tok.token_to_id(EOS),
        tokenizer="tokenizer.json",
        extra={"tokenizer_kind": "file" if cfg.tokenizer.path else cfg.tokenizer.kind, "seed": seed,
               "fingerprint": fp, "stats": "../stats.json"})
    m = shards.read_manifest(shard_dir)
    for split, d in m["splits"].items():
        print(f"{split}: {d['documents']:,} documents, {d['tokens']:,} tokens in {len(d['shards'])} shard(s)")
    print(f"shards and manifest: {manifest}", flush=True)
    return m


def documents(cfg: DataConfig, out: Path, seed: int):
    """Ingest, then every stage of `cfg.steps`, then the split: a lazy Dataset, one row per document.

    Dropped rows stay in it, marked in `drop`, with the `_bytes_<stage>` columns stats.py counts.
    """
    ds = ingest(cfg.ingest, out).map_batches(stats.add_stage_bytes, fn_args=("ingest",), batch_format="pyarrow")
    split_done = False
    for name in cfg.steps:
        if name == "augment":  # after dedup, on the train split only
            ds, split_done = ds.map_batches(assign_split, fn_args=(cfg.split.val_fraction, seed),
                                            batch_format="pyarrow"), True
        kwargs = {"workdir": str(out / "dedup")} if name == "dedup" else {}
        ds = _import(STEPS[name])(ds, getattr(cfg, name), **kwargs)
        ds = ds.map_batches(stats.add_stage_bytes, fn_args=(name,), batch_format="pyarrow")
    if not split_done:
        ds = ds.map_batches(assign_split, fn_args=(cfg.split.val_fraction, seed), batch_format="pyarrow")
    return ds


def ingest(cfg: IngestConfig, out: Path):
    """The union of every configured source, in the document schema."""
    from raylm.data.ingest import crawl, files, warc

    parts = []
    if cfg.files.paths:  # each run() expands its paths on the driver first: a missing input fails here
        parts.append(files.run(cfg.files))
    if cfg.warc.paths:
        parts.append(warc.run(cfg.warc))
    if cfg.crawl.seeds or cfg.crawl.sitemap:
        c = cfg.crawl
        if not Path(c.work_dir).is_absolute():
            c = replace(c, work_dir=str(out / c.work_dir))
        parts.append(crawl.run(c))
    if not parts:
        raise ValueError("no input: set data.ingest.files.paths, data.ingest.warc.paths or "
                         "data.ingest.crawl.seeds")
    parts = [p.map_batches(_canonical, batch_format="pyarrow") for p in parts]
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def _blank_dropped(batch: pa.Table) -> pa.Table:
    """Null the text of dropped rows: from here on they are only counted (drop, _bytes_<stage>)."""
    import pyarrow.compute as pc

    # `take` copies only the kept strings into a new buffer; if_else(mask, text, null) would only
    # mark them null and keep the whole old buffer alive.
    rows = pc.if_else(kept_mask(batch), pa.array(range(batch.num_rows), pa.int64()), pa.scalar(None, pa.int64()))
    i = batch.column_names.index("text")
    return batch.set_column(i, batch.schema.field(i), batch["text"].take(rows))


def _canonical(batch: pa.Table) -> pa.Table:
    """Exactly the document columns, so sources can be unioned."""
    return conform(batch).select(list(DOC_COLUMNS))


def _sample_texts(ds, limit: int):
    """Stream training texts to the driver until `limit` UTF-8 bytes (the BPE training sample)."""
    seen = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=1024):
        for t in batch["text"].to_pylist():
            yield t
            seen += len(t.encode("utf-8"))
            if seen >= limit:
                return


def _write_shard(group: pa.Table, out_dir: str, dtype: str, pause_s: float) -> pa.Table:
    """shards.write_shard, then wait `pause_s` seconds. The pause is a fault-injection hook:
    RAYLM_SHARD_PAUSE_S (read on the driver, 0 = off) holds each writing task after its shard is
    done, so tests/integration/test_data_kill_rerun.py can SIGKILL a run between finished shards."""
    meta = shards.write_shard(group, out_dir, dtype)
    if pause_s > 0:
        time.sleep(pause_s)
    return meta


def _token_sums(batch: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    g = batch.group_by("split").aggregate([("n_tokens", "sum")])
    return pa.table({"split": g["split"], "n": pc.cast(g["n_tokens_sum"], pa.int64())})


def _add_shard(batch: pa.Table, n_shards: dict, seed: int) -> pa.Table:
    """Add `shard` = "<split>-<k>", k from a seeded hash of the id (see shards.py)."""
    names = [f"{s}-{shards.shard_of([i], n_shards[s], seed)[0]:05d}"
             for i, s in zip(batch["id"].to_pylist(), batch["split"].to_pylist())]
    return batch.append_column("shard", pa.array(names, type=pa.string()))
