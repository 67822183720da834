"""`raylm data`: ingest -> stages (order from the YAML; the split is one) -> tokenizer -> shards.

The map from a stage name to its config and function is the STEPS dict below (no registry);
every stage is called as run(ds, cfg, ctx). Tokenizer: tokenize.build_tokenizer; shards and
manifest: shards.write_all.
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
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import yaml

from raylm import atomic, console, progress, storage
from raylm.config import ConfigError, to_dict
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
from raylm.data.schema import DOC_COLUMNS, conform, doc_id, kept_mask
from raylm.data.shards import ShardConfig
from raylm.data.split import SplitConfig
from raylm.data.tokenize import TokenizerConfig, build_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


@dataclass
class IngestConfig:
    files: FilesConfig = field(default_factory=FilesConfig)  # txt, jsonl, parquet, MediaWiki, Gutenberg, Reddit
    warc: WarcConfig = field(default_factory=WarcConfig)     # WARC / WET files (used when paths given)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)  # web crawl (used when seeds/sitemap given)
    # More file inputs, each a named source (same keys as `files`), e.g. {wiki: {paths: [...],
    # format: mediawiki}, books: {...}}: the name is the documents' `source` (the three above are
    # `file`, `warc`, `crawl`), which data.mix weights and the manifest counts per source.
    sources: dict[str, FilesConfig] = field(default_factory=dict)

    def __post_init__(self):
        for name, src in self.sources.items():
            if name in BUILTIN_SOURCES or not name.replace("_", "").replace("-", "").isalnum():
                raise ConfigError(f"data.ingest.sources.{name}: a source name is letters, digits, _ and -, "
                                  f"and not {', '.join(BUILTIN_SOURCES)}")
            if not src.paths:
                raise ConfigError(f"data.ingest.sources.{name}.paths is empty: name its input files")

    def source_names(self) -> list[str]:
        """The sources this config reads, in ingest order."""
        names = ["file"] if self.files.paths else []
        names += ["warc"] if self.warc.paths else []
        names += ["crawl"] if self.crawl.seeds or self.crawl.sitemap else []
        return names + list(self.sources)


BUILTIN_SOURCES = ("file", "warc", "crawl")


@dataclass
class DataConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    steps: list[str] = field(default_factory=list)  # stages in order, names are keys of STEPS; split
                                                    # unlisted = before augment, else last (`plan`)
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
    # Source -> weight of its training documents, by seeded repetition after dedup and the split
    # (2 = twice, 0.5 = half, 0 = none; unnamed sources 1; validation untouched): raylm/data/mix.py.
    mix: dict[str, float] = field(default_factory=dict)
    # Node labels every data task and actor needs (Ray Data's execution label selector), e.g.
    # {raylm-role: data} to keep data stages off GPU nodes; {} = any node. Placement only:
    # not part of the output fingerprint.
    label_selector: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        steps = self.steps
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ConfigError(f"data.steps: unknown stage {unknown[0]!r}; valid stages: {', '.join(STEPS)}")
        twice = sorted({s for s in steps if steps.count(s) > 1})
        if twice:
            raise ConfigError(f"data.steps: {', '.join(twice)} listed more than once: {steps}")
        if "augment" in steps and "split" in steps and steps.index("split") > steps.index("augment"):
            raise ConfigError("data.steps: split must come before augment (augment copies train "
                              "documents only, so it needs the split)")
        if "augment" in steps and steps[-1] != "augment":
            raise ConfigError("data.steps: augment must be the last stage (it runs after dedup and the "
                              "train/val split, on the train split only)")
        if self.mix or "mix" in steps:
            from raylm.data import mix

            if not self.mix:
                raise ConfigError("data.steps: mix is listed but data.mix names no source weights")
            try:
                mix.check(self.mix, self.ingest.source_names())
            except ValueError as e:
                raise ConfigError(str(e)) from None
            order = plan(steps, mix=True)
            if order.index("mix") < order.index("split"):
                raise ConfigError("data.steps: mix must come after split (it weights the train split only)")
        if "decontam" in steps and not self.decontam.paths:
            raise ConfigError("data.steps: decontam is listed but data.decontam.paths is empty: name the "
                              "benchmark files whose text must not be trained on")


# Stage name -> import path of its run(ds, cfg, ctx); its config is DataConfig.<name>. Every stage
# is called the same way; ctx is the StageContext below, which stages that need nothing from it
# ignore (and default to None, so they can be called alone). Imports are lazy so config loading
# stays fast. The usual order is the order below.
STEPS: dict[str, str] = {
    "extract": "raylm.data.extract:run",       # HTML -> title + main text
    "normalise": "raylm.data.normalise:run",   # ftfy, Unicode form, control chars, whitespace
    "langid": "raylm.data.langid:run",         # language + score, filter
    "quality": "raylm.data.quality:run",       # Gopher / C4 / FineWeb heuristics
    "content": "raylm.data.content:run",       # domain blocklist, word lists
    "decontam": "raylm.data.decontam:run",     # drop documents holding benchmark text (n-gram overlap)
    "pii": "raylm.data.pii:run",               # redact e-mail, phone, IP, card, SSN, IBAN
    "dedup": "raylm.data.dedup.stage:run",     # exact + MinHash near-duplicates (workdir: <out>/dedup)
    "split": "raylm.data.split:run",           # train / val by a seeded hash of the id (ctx.seed)
    "mix": "raylm.data.mix:run",               # data.mix: source weights on the train split (after split)
    "augment": "raylm.data.augment:run",       # train split only; always last
}


@dataclass(frozen=True)
class StageContext:
    """What a stage may need besides its own config; the same for every stage of a run."""
    out: str    # the run's data folder (<run>/data; a local path or an object-store URI); a stage
                # keeping files uses <out>/<stage name> (storage.join)
    seed: int   # the run's seed: randomness that every worker must agree on derives from it


def plan(steps: list[str], mix: bool = False) -> list[str]:
    """The stages a run executes, in order: `steps` (data.steps, validated by DataConfig) with the
    split where it always ran when unlisted: just before augment, else last; with `mix` (data.mix
    set) the mix stage right after the split when unlisted. Resolved at run time, so the saved
    config (and its fingerprint) is what the user wrote."""
    if "split" in steps:
        order = list(steps)
    elif "augment" in steps:
        order = [*steps[:-1], "split", "augment"]  # augment is last (checked)
    else:
        order = [*steps, "split"]
    if mix and "mix" not in order:
        order.insert(order.index("split") + 1, "mix")
    return order


def stages_of(cfg: DataConfig) -> list[str]:
    """`plan` of a data config."""
    return plan(cfg.steps, mix=bool(cfg.mix))


def fingerprint(cfg: DataConfig, seed: int) -> str:
    tree = to_dict(replace(cfg, label_selector={}))
    for parent, key in ((tree, "mix"), (tree["ingest"], "sources")):  # fields newer than most outputs:
        if not parent[key]:                                              # unset, they leave the
            del parent[key]                                              # fingerprint as it was
    return hashlib.sha256(f"{seed}\n{yaml.safe_dump(tree, sort_keys=False, default_flow_style=None)}"
                          .encode()).hexdigest()[:16]


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


def stage_function(name: str):
    """The run(ds, cfg, ctx) of stage `name` (imported on first use: config loading stays fast)."""
    mod, fn = STEPS[name].rsplit(":", 1)
    return getattr(__import__(mod, fromlist=[fn]), fn)


def check_inputs(cfg: DataConfig, out: str | Path) -> None:
    """Fail fast, before Ray starts: every input file the config names exists and is readable.

    Checks the ingest files and WARC paths (expanded as the run expands them: a missing path or
    a glob matching nothing is a FileNotFoundError naming the config key), the tokenizer file
    (and that it has the EOS token), and, for the steps the run executes, decontam's benchmark
    files and dedup's previous workdirs. Crawl seeds are URLs, fetched only by the run. `out` is
    the run's data folder (relative stage paths are under it; none is an input today). Lists
    names and reads small files only: no Ray, no document is read."""
    from pyarrow.fs import FileType

    from raylm.data.dedup import incremental
    from raylm.data.ingest import files, warc
    from raylm.storage import access_error, is_remote, resolve

    def readable(key: str, uri: str) -> None:  # local files: the access check of open()
        if not is_remote(uri) and not os.access(resolve(uri)[1], os.R_OK):
            raise PermissionError(f"{key}: {uri} is not readable")

    ing = cfg.ingest
    file_inputs = [("data.ingest.files", ing.files)] if ing.files.paths else []
    file_inputs += [(f"data.ingest.sources.{name}", fc) for name, fc in ing.sources.items()]
    for key, fc in file_inputs:
        try:
            files.check_unknown(fc)  # files the extension does not type: an error unless skipped
        except FileNotFoundError:  # names the key and the path
            raise
        except OSError as e:  # an unreachable or unauthorised bucket
            raise access_error(f"{key}.paths", ", ".join(fc.paths), e) from None
    for key, paths, expand in ([(f"{k}.paths", fc.paths, files.expand_paths) for k, fc in file_inputs]
                               + [("data.ingest.warc.paths", ing.warc.paths, warc.expand_paths)]):
        try:
            found = expand(paths) if paths else []
        except FileNotFoundError:  # already names the key and the path
            raise
        except OSError as e:  # an unreachable or unauthorised bucket
            raise access_error(key, ", ".join(paths), e) from None
        for uri in found:  # listed, so they exist
            readable(key, uri)
    if cfg.tokenizer.path:
        load_tokenizer(cfg.tokenizer.path)  # a small JSON file, read again by the run
    if "decontam" in stages_of(cfg):
        for p in cfg.decontam.paths:
            fs, where = resolve(p)
            try:
                kind = fs.get_file_info(where).type
            except OSError as e:
                raise access_error("data.decontam.paths", p, e) from None
            if kind != FileType.File:
                raise FileNotFoundError(f"data.decontam.paths: {p} does not exist")
            readable("data.decontam.paths", p)
    if "dedup" in stages_of(cfg) and cfg.dedup.previous:
        for prev in cfg.dedup.previous:
            try:
                there = storage.exists(prev)
            except OSError as e:
                raise access_error("data.dedup.previous", prev, e) from None
            if not there:
                raise FileNotFoundError(f"data.dedup.previous: {prev} does not exist")
        incremental.check_previous(cfg.dedup.previous, asdict(cfg.dedup.minhash), cfg.dedup.survivor)


def run(cfg: DataConfig, out: str | Path, seed: int = 1337) -> dict:
    """Run the data pipeline into `<out>`; returns the manifest. Skips if already complete."""
    with placement(cfg.label_selector):
        return _run(cfg, storage.location(out), seed)


def _run(cfg: DataConfig, out: str, seed: int) -> dict:
    shard_dir = storage.join(out, "shards")
    fp = fingerprint(cfg, seed)
    if storage.is_file(storage.join(shard_dir, shards.MANIFEST)):
        m = shards.read_manifest(shard_dir)
        if m.get("fingerprint") == fp:
            shards.check(shard_dir, full=True)  # a damaged shard is an error, never "complete"
            log.info("data already complete in %s (same config); skipping", shard_dir)
            return m
    storage.makedirs(shard_dir)
    # A run killed mid-write leaves its writers' temps (raylm.atomic); the rename never happened,
    # so they are garbage. One `raylm data` per output folder: no writer is live now.
    for d in (out, shard_dir):
        atomic.sweep(d)
    t0 = time.time()
    if not set(stages_of(cfg)) - {"split", "mix", "augment"}:
        console.say("[raylm] data.steps lists no cleaning stage: documents are tokenized as ingested (no extraction, "
              "normalisation, quality, PII or dedup)")

    # 1. Ingest + stages, read once: stats, tokenizer and shards reuse them. Dropped rows are kept
    # for the stats, without their text, so the object store holds the kept documents' text only.
    # Their tasks count into `tally`; raylm.progress prints a live line per phase from it.
    import ray

    tally = progress.tally()
    try:
        stages = stages_of(cfg)
        total_files = input_count(cfg.ingest)
        line = lambda snap, t: progress.documents_line(snap, stages, total_files, t)  # noqa: E731
        with progress.Live(progress.reader(tally), line):
            ds = (documents(cfg, out, seed, tally).map_batches(blank_dropped, batch_format="pyarrow")
                  .materialize())
        report = _report(ds, [s for s in stages_of(cfg) if s in cfg.steps or s == "mix"])
        docs = ds.map_batches(_kept, batch_format="pyarrow")
        # 2. Tokenizer, 3. shards. stats.json before the manifest: the manifest is written last,
        # its presence means "complete".
        tok = build_tokenizer(docs, cfg.tokenizer)
        log.info("tokenizer: %s, vocab %d", cfg.tokenizer.kind, tok.get_vocab_size())
        metas = shards.write_all(docs, tok, shard_dir, cfg.shards, seed, tally=tally,
                                 total_docs=report["documents_kept"])
    finally:
        ray.kill(tally)
    report["seconds"] = round(time.time() - t0, 2)
    atomic.write_text(storage.join(out, "stats.json"), json.dumps(report, indent=2))
    path = shards.write_manifest(
        shard_dir, metas, **shards.tokenizer_fields(tok),
        extra={"tokenizer_kind": "file" if cfg.tokenizer.path else cfg.tokenizer.kind, "seed": seed,
               "fingerprint": fp, "stats": "../stats.json"})
    m = shards.read_manifest(shard_dir)
    for split, d in m["splits"].items():
        console.say(f"{split}: {d['documents']:,} documents, {d['tokens']:,} tokens in {len(d['shards'])} shard(s)")
    console.say(f"shards and manifest: {path}")
    return m


def documents(cfg: DataConfig, out: str | Path, seed: int, tally=None):
    """Ingest, then every stage of `stages_of(cfg)`: a lazy Dataset, one row per document.

    Dropped rows stay in it, marked in `drop`, with the `_bytes_<stage>` columns stats.py counts.
    With `tally` (raylm.progress), rows are counted after ingest (and their distinct files) and
    after each stage.
    """
    ctx = StageContext(out=storage.location(out), seed=seed)
    ds = ingest(cfg.ingest, ctx.out).map_batches(_after_stage, fn_args=("ingest", tally), batch_format="pyarrow")
    for name in stages_of(cfg):
        ds = stage_function(name)(ds, getattr(cfg, name), ctx)
        ds = ds.map_batches(_after_stage, fn_args=(name, tally), batch_format="pyarrow")
    return ds


def _after_stage(batch: pa.Table, stage: str, tally) -> pa.Table:
    progress.count(batch, tally, stage, distinct="uri" if stage == "ingest" else None)
    return stats.add_stage_bytes(batch, stage)


def input_count(cfg: IngestConfig) -> int | None:
    """How many inputs ingest reads (files, WARC files, crawl pages at most); None when a crawl
    has no page limit. Lists the paths again on the driver (names only)."""
    from raylm.data.ingest import files, warc

    n = len(files.expand_paths(cfg.files.paths)) if cfg.files.paths else 0
    n += sum(len(files.expand_paths(fc.paths)) for fc in cfg.sources.values())
    n += len(warc.expand_paths(cfg.warc.paths)) if cfg.warc.paths else 0
    if cfg.crawl.seeds or cfg.crawl.sitemap:
        if not cfg.crawl.max_pages:
            return None
        n += cfg.crawl.max_pages
    return n or None


def _report(ds, steps: list[str]) -> dict:
    """The stats of the documents (printed), checked: both splits must keep documents."""
    report = stats.merge([r["stats"] for r in ds.map_batches(stats.partial, batch_format="pyarrow")
                          .take_all()], steps)
    console.say(stats.table(report))
    n_train = report["split_documents"].get("train", 0)
    n_val = report["split_documents"].get("val", 0)
    if n_train == 0 or n_val == 0:
        raise ValueError(f"after cleaning, {report['documents_kept']} documents remain: {n_train} train, "
                         f"{n_val} validation. Both splits need documents: add input, relax filters or "
                         f"change data.split.val_fraction")
    return report


def ingest(cfg: IngestConfig, out: str):
    """The union of every configured source, in the document schema."""
    from raylm.data.ingest import crawl, files, warc

    parts = []
    if cfg.files.paths:  # each run() expands its paths on the driver first: a missing input fails here
        parts.append(files.run(cfg.files))
    if cfg.warc.paths:
        parts.append(warc.run(cfg.warc))
    if cfg.crawl.seeds or cfg.crawl.sitemap:
        c = cfg.crawl
        if not storage.is_remote(c.work_dir) and not Path(c.work_dir).is_absolute():
            c = replace(c, work_dir=storage.join(out, c.work_dir))  # under the data folder, local or not
        parts.append(crawl.run(c))
    for name, fc in cfg.sources.items():
        parts.append(files.run(fc).map_batches(_named_source, fn_args=(name,), batch_format="pyarrow"))
    if not parts:
        raise ValueError("no input: set data.ingest.files.paths, data.ingest.warc.paths, "
                         "data.ingest.crawl.seeds or data.ingest.sources")
    parts = [p.map_batches(_canonical, batch_format="pyarrow") for p in parts]
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def _named_source(batch: pa.Table, name: str) -> pa.Table:
    """Documents of source `name`: `source` = name, and ids that another source's files of the
    same names cannot share (doc_id of the name and the file's own id)."""
    ids = pa.array([doc_id(name, i) for i in batch["id"].to_pylist()], pa.string())
    batch = batch.set_column(batch.column_names.index("id"), "id", ids)
    return batch.set_column(batch.column_names.index("source"), "source",
                            pa.array([name] * batch.num_rows, pa.string()))


def blank_dropped(batch: pa.Table) -> pa.Table:
    """Null the text of dropped rows: from here on they are only counted (drop, _bytes_<stage>)."""
    import pyarrow.compute as pc

    # `take` copies only the kept strings into a new buffer; if_else(mask, text, null) would only
    # mark them null and keep the whole old buffer alive.
    rows = pc.if_else(kept_mask(batch), pa.array(range(batch.num_rows), pa.int64()), pa.scalar(None, pa.int64()))
    i = batch.column_names.index("text")
    return batch.set_column(i, batch.schema.field(i), batch["text"].take(rows))


def _kept(batch: pa.Table) -> pa.Table:
    return batch.filter(kept_mask(batch))


def _canonical(batch: pa.Table) -> pa.Table:
    """Exactly the document columns and the decode-error count (0 where a source does not count),
    so sources can be unioned."""
    from raylm.data.ingest.files import DECODE_ERRORS

    batch = conform(batch)
    if DECODE_ERRORS not in batch.column_names:
        batch = batch.append_column(DECODE_ERRORS, pa.array([0] * batch.num_rows, pa.int64()))
    return batch.select([*DOC_COLUMNS, DECODE_ERRORS])
