"""`raylm data`: ingest -> stages (order from the YAML; the split is one) -> tokenizer -> shards.

The map from a stage name to its config and function is the STEPS dict in config.py (no
registry), beside DataConfig; every stage is called as run(ds, cfg, ctx). Tokenizer:
tokenize.build_tokenizer; shards and manifest: shards.write_all.
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
import json
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import pyarrow as pa

from raylm import atomic, console, progress, storage
from raylm.data import shards, stats
from raylm.data.config import STEPS, DataConfig, IngestConfig, StageContext, fingerprint, stages_of
from raylm.data.schema import DOC_COLUMNS, conform, doc_id, kept_mask
from raylm.data.tokenize import build_tokenizer, load_tokenizer

log = logging.getLogger(__name__)


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
