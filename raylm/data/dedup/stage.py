"""The dedup stage: exact (+URL) dedup, then MinHash near-dup dedup, resumable by step.

run(ds, cfg, ctx) marks rows `drop="dedup:exact"` / `"dedup:url"` / `"dedup:near"`
(never deletes them) and writes under workdir, each step atomically (temp dir, done
marker, rename), so a rerun on the same input resumes after the last finished step:

  exact_dups/   (id, reason)              exact and URL duplicates
  signatures/   (id, rank, minhash, n_shingles)
  candidates/   (src, dst)                LSH candidate edges (rank strings, src < dst)
  edges/        (src, dst, jaccard)       verified near-dup pairs (jaccard = -1 if not verified)
  components/   (hi, lo)                  node -> component minimum (= survivor)
  clusters/     (id, cluster)             every member of a cluster of >= 2 docs; cluster = survivor id
  near_dups/    (id, reason)
  summary.json  rows and seconds per step; config.json  the config the steps were made with

Incremental (cfg.previous = earlier workdirs): near dups are also found against the
earlier runs' stored signatures (see incremental.py); exact/URL dedup stays within this
batch. This run's signatures/ holds only its own documents, so runs chain.

Everything that grows with the corpus stays in Ray Data blocks and parquet files; the
driver holds the config, row counts and the fingerprints of components.run.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raylm import atomic, storage
from raylm.data import blocks, schema
from raylm.data.dedup import exact
from raylm.data.dedup.lsh import EDGE_SCHEMA, LSHConfig
from raylm.data.dedup.minhash import MinHashConfig, signatures, string_hashes
from raylm.data.dedup.survivor import PREFIX_WIDTH, SurvivorRule, id_from_rank, rank_keys

if TYPE_CHECKING:
    from raylm.data.config import StageContext

REASON_NEAR = "dedup:near"
DONE = "_DONE"
CLUSTER_SCHEMA = pa.schema([("id", pa.string()), ("cluster", pa.string())])  # clusters/ step


@dataclass
class DedupConfig:
    exact: bool = True                  # drop exact duplicates of the normalised text
    url: bool = False                   # drop duplicates of the normalised URL
    near: bool = True                   # drop MinHash near duplicates
    # Two thresholds, one decision. `threshold` is the decision: the Jaccard of word-shingle sets
    # at or above which two documents are near duplicates. `lsh.threshold` only tunes which pairs
    # become candidates. verify: true (default) scores every candidate exactly against
    # `threshold`, so the LSH is tuned lower (0.7) for recall and must not be above `threshold`.
    # verify: false takes the candidates as the decisions, so the LSH alone decides and the two
    # must be equal (and lsh.bands/rows derived, not set): a config error otherwise, never a
    # threshold silently ignored.
    threshold: float = 0.8              # Jaccard at which two docs are near dups (the decision)
    verify: bool = True                 # check LSH candidates by exact Jaccard (else candidates = decisions)
    survivor: SurvivorRule = "min_id"   # who survives a group: min_id | longest | score
    score_column: str = ""              # column read by survivor="score" (higher is better)
    lowercase: bool = True              # exact text key: lowercase first
    collapse_whitespace: bool = True    # exact text key: whitespace runs -> one space
    num_partitions: int = 32            # partitions of every shuffle (keys, buckets, edges, joins): at
                                        # most this many, fewer for small inputs (data/blocks.py)
    max_rounds: int = 64                # connected-components rounds before giving up
    workdir: str = ""                   # step outputs (shared filesystem); "" = <data out>/dedup in a
                                        # pipeline run; relative = under <data out>, as crawl.work_dir
    previous: list[str] = field(default_factory=list)  # workdirs of earlier runs to dedup against (incremental)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    lsh: LSHConfig = field(default_factory=LSHConfig)

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"dedup.threshold must be in (0, 1], got {self.threshold}")
        if self.survivor not in ("min_id", "longest", "score"):
            raise ValueError(f"dedup.survivor must be min_id|longest|score, got {self.survivor!r}")
        if self.survivor == "score" and not self.score_column:
            raise ValueError("dedup.survivor='score' needs dedup.score_column")
        if self.num_partitions < 1:
            raise ValueError(f"dedup.num_partitions must be >= 1, got {self.num_partitions}")
        if self.near and self.verify and self.lsh.threshold > self.threshold:
            raise ValueError(f"dedup.lsh.threshold ({self.lsh.threshold}) above dedup.threshold "
                             f"({self.threshold}) only loses recall when candidates are verified")
        if self.near and not self.verify and self.lsh.bands:
            raise ValueError(f"dedup.verify is false and dedup.lsh.bands/rows are set ({self.lsh.bands} x "
                             f"{self.lsh.rows}): the bands alone would decide and dedup.threshold "
                             f"({self.threshold}) would be ignored; set dedup.lsh.bands and rows to 0 "
                             "(derived from the threshold) or set dedup.verify to true")
        if self.near and not self.verify and self.lsh.threshold != self.threshold:
            raise ValueError(f"dedup.verify is false, so the LSH alone decides and dedup.threshold "
                             f"({self.threshold}) would be ignored: set dedup.lsh.threshold to the same "
                             f"value (now {self.lsh.threshold}), or set dedup.verify to true")

    def exact_config(self) -> exact.ExactDedupConfig:
        return exact.ExactDedupConfig(text=self.exact, url=self.url, lowercase=self.lowercase,
                                      collapse_whitespace=self.collapse_whitespace, survivor=self.survivor,
                                      score_column=self.score_column, num_partitions=self.num_partitions)


# ---------------------------------------------------------------- pure parts


def signature_table(batch: pa.Table, cfg: DedupConfig) -> pa.Table:
    """(id, rank, minhash fixed_size_list<uint32>[num_perm], n_shingles) of the kept rows."""
    batch = schema.conform(batch)
    batch = batch.filter(schema.kept_mask(batch))
    sig, counts = signatures(batch["text"], cfg.minhash)
    flat = pa.array(sig.ravel(), pa.uint32())
    return pa.table({"id": batch["id"].cast(pa.string()),
                     "rank": rank_keys(batch, cfg.survivor, cfg.score_column).cast(pa.string()),
                     "minhash": pa.FixedSizeListArray.from_arrays(flat, cfg.minhash.num_perm),
                     "n_shingles": pa.array(counts, pa.int64())})


def unverified(edges: pa.Table) -> pa.Table:
    return edges.select(["src", "dst"]).append_column("jaccard", pa.array(np.full(edges.num_rows, -1.0)))


def cluster_rows(comp: pa.Table, rule: str) -> pa.Table:
    """(hi, lo) -> (id, cluster) for the members; roots are added by `root_rows`."""
    return pa.table({"id": id_from_rank(comp["hi"], rule).cast(pa.string()),
                     "cluster": id_from_rank(comp["lo"], rule).cast(pa.string())})


def keyed_by_lo(comp: pa.Table, num_partitions: int) -> pa.Table:
    part = (string_hashes(comp["lo"]) % np.uint64(num_partitions)).astype(np.int64)
    return comp.append_column("part", pa.array(part))


def root_rows(group: pa.Table, rule: str) -> pa.Table:
    """Distinct roots of a partition of (hi, lo, part) rows -> (id=root, cluster=root)."""
    roots = pc.unique(group["lo"].combine_chunks())
    ids = id_from_rank(roots, rule).cast(pa.string())
    return pa.table({"id": ids, "cluster": ids})


def _new_only(comp: pa.Table) -> pa.Table:
    from raylm.data.dedup.incremental import NEW

    return comp.filter(pc.starts_with(comp["hi"], NEW))


def near_reasons(comp: pa.Table, rule: str | int) -> pa.Table:
    ids = id_from_rank(comp["hi"], rule).cast(pa.string())
    return pa.table({"id": ids, "reason": pa.array([REASON_NEAR] * len(ids), pa.string())},
                    schema=exact.REASONS_SCHEMA)


def dedup_local(docs: pa.Table, cfg: DedupConfig) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Single-process reference of run() on one table.

    Returns (marked docs, clusters (id, cluster), pair decisions (src, dst, jaccard) by id;
    jaccard = -1 when not verified).

    Same pure functions, no Ray and no workdir: for tests and small inputs only.
    """
    from raylm.data.dedup import components, lsh, verify

    if cfg.previous:
        raise ValueError("dedup_local does not do incremental runs (dedup.previous); use run()")
    docs = schema.conform(docs)
    reasons = [exact.REASONS_SCHEMA.empty_table()]
    if cfg.exact or cfg.url:
        ecfg = cfg.exact_config()
        if cfg.exact:
            reasons.append(exact.duplicates_in(exact.key_table(docs, "text", ecfg), exact.REASON_TEXT))
        if cfg.url:
            keys = exact.key_table(docs, "url", ecfg)
            keys = keys.filter(pc.invert(pc.is_in(keys["id"], reasons[-1]["id"])))
            reasons.append(exact.duplicates_in(keys, exact.REASON_URL))
    clusters = pa.table({"id": pa.array([], pa.string()), "cluster": pa.array([], pa.string())})
    pairs = verify.SCORED_SCHEMA.empty_table()
    if cfg.near:
        sigs = signature_table(docs, cfg)
        cands = lsh.edges_local(sigs, cfg.lsh, cfg.minhash.num_perm)
        if cfg.verify and cands.num_rows:
            e = verify.with_ids(cands, cfg.survivor)
            text = dict(zip(docs["id"].to_pylist(), docs["text"].to_pylist()))
            batch = e.append_column("src_text", pa.array([text[i] for i in e["src_id"].to_pylist()], pa.string()))
            batch = batch.append_column("dst_text", pa.array([text[i] for i in e["dst_id"].to_pylist()], pa.string()))
            cands = verify.score(batch, cfg.minhash.ngram, cfg.threshold)
        else:
            cands = unverified(cands)
        pairs = pa.table({"src": id_from_rank(cands["src"], cfg.survivor),
                          "dst": id_from_rank(cands["dst"], cfg.survivor),
                          "jaccard": cands["jaccard"]}, schema=verify.SCORED_SCHEMA)
        comp = components.components_local(cands.select(["src", "dst"]))
        if comp.num_rows:
            members = cluster_rows(comp, cfg.survivor)
            clusters = pa.concat_tables([members, root_rows(comp, cfg.survivor)])
        done = pa.concat_tables(reasons)["id"]
        near = near_reasons(comp, cfg.survivor)
        reasons.append(near.filter(pc.invert(pc.is_in(near["id"], done))))
    all_reasons = pa.concat_tables(reasons)
    lookup = dict(zip(all_reasons["id"].to_pylist(), all_reasons["reason"].to_pylist()))
    marked = schema.set_drop(docs, [lookup.get(i) for i in docs["id"].to_pylist()])
    return marked, clusters, pairs


# ---------------------------------------------------------------- steps on disk

def _step(workdir: str, name: str, out_schema: pa.Schema, build, summary: dict, after: str | None = None):
    """Dataset of step `name`: read if its done marker exists, else build, write atomically, read.

    `after`: the step whose output this one reads. When that wrote no rows, this one is written
    empty without calling `build`: Ray Data does not call a batch function on an empty dataset's
    blocks, so the columns a step's maps add would be missing from its joins and shuffles (a crawl
    of distinct pages, with no LSH candidate pair, failed in verification's join)."""
    path = storage.join(workdir, name)
    marker = storage.join(path, DONE)
    if not storage.is_file(marker):
        t0 = time.time()
        ds = (_empty(out_schema) if after is not None and summary[after]["rows"] == 0 else build()).materialize()
        done = {"rows": None, "seconds": None}
        if storage.is_remote(path):  # no rename on an object store: files first, the marker last
            storage.delete(path)  # a crashed earlier attempt's files
            fs, where = storage.resolve(storage.join(path, "part"))
            ds.write_parquet(where, filesystem=fs)
            done = {"rows": ds.count(), "seconds": round(time.time() - t0, 2), "dir": "part"}
            atomic.write_text(marker, json.dumps(done))
        else:
            with atomic.directory(path) as tmp:  # replaces a crashed earlier attempt without a marker
                ds.write_parquet(str(tmp))
                (tmp / DONE).write_text(json.dumps({"rows": ds.count(), "seconds": round(time.time() - t0, 2)}))
    return read_step(workdir, name, out_schema, summary)


def read_step(workdir: str, name: str, out_schema: pa.Schema, summary: dict | None = None):
    """Dataset of finished step `name` of a workdir (local or object store; its marker says
    where its files are); the marker's contents go to `summary[name]`."""
    import ray

    path = storage.join(workdir, name)
    done = json.loads(storage.read_text(storage.join(path, DONE)))
    if summary is not None:
        summary[name] = done
    if done["rows"] == 0:
        return _empty(out_schema)
    fs, where = storage.resolve(storage.join(path, done["dir"]) if done.get("dir") else path)
    return ray.data.read_parquet(where, filesystem=fs, schema=out_schema, file_extensions=["parquet"])


def _empty(schema: pa.Schema):
    import ray

    return ray.data.from_arrow(schema.empty_table())


def _check_workdir(workdir: str, cfg: DedupConfig) -> None:
    """Refuse to resume from step outputs made with another config."""
    storage.makedirs(workdir)
    path = storage.join(workdir, "config.json")
    want = dataclasses.asdict(cfg)
    want.pop("workdir")
    if storage.is_file(path):
        have = json.loads(storage.read_text(path))
        if have != want:
            raise ValueError(f"{workdir} holds dedup outputs of another config; use a new workdir "
                             f"or delete it. Differences: {sorted(k for k in want if have.get(k) != want[k])}")
        return
    atomic.write_text(path, json.dumps(want, indent=1, sort_keys=True))


def workdir_of(cfg: DedupConfig, ctx: StageContext | None) -> str:
    """Where the step outputs go: cfg.workdir when set (relative: under the run's data folder),
    else <ctx.out>/dedup in a pipeline run, else (called alone) a fresh temp folder."""
    if cfg.workdir:
        return storage.join(ctx.out, cfg.workdir) if ctx is not None else cfg.workdir
    return storage.join(ctx.out, "dedup") if ctx is not None else tempfile.mkdtemp(prefix="raylm-dedup-")


def run(ds, cfg: DedupConfig, ctx: StageContext | None = None):
    """Mark exact / URL / near duplicates in `ds` and write the step outputs under the workdir
    (`workdir_of`).

    Returns the documents with `drop` set (lazy; one join of the documents with the
    duplicate ids, so their order is not kept). Documents need unique ids.
    """
    import functools

    from raylm.data.dedup import components, incremental, lsh, verify

    workdir = workdir_of(cfg, ctx)
    _check_workdir(workdir, cfg)
    atomic.sweep(workdir)  # step temps of a killed run (one run per workdir: none is live)
    if cfg.previous:
        incremental.check_previous(cfg.previous, dataclasses.asdict(cfg.minhash), cfg.survivor)
    # The steps read the documents up to four times (exact keys, signatures, verification,
    # marking): materialise once so upstream stages are not recomputed (spills to disk if big).
    # Then no more blocks, and no more shuffle partitions, than the size needs (blocks.py): every
    # block is a task in each of the steps' shuffles and joins.
    ds = blocks.coalesce(ds.materialize())
    p, rule = blocks.partitions(cfg.num_partitions, ds.size_bytes() or 0), cfg.survivor
    summary: dict = {}
    reason_sets = []

    if cfg.exact or cfg.url:
        ecfg = dataclasses.replace(cfg.exact_config(), num_partitions=p)
        exact_dups = _step(workdir, "exact_dups", exact.REASONS_SCHEMA,
                           lambda: exact.duplicates(ds, ecfg), summary)
        reason_sets.append(exact_dups)

    if cfg.near:
        sig_schema = pa.schema([("id", pa.string()), ("rank", pa.string()),
                                ("minhash", pa.list_(pa.uint32(), cfg.minhash.num_perm)), ("n_shingles", pa.int64())])
        sigs = _step(workdir, "signatures", sig_schema, lambda: ds.map_batches(
            functools.partial(signature_table, cfg=cfg), batch_format="pyarrow", num_cpus=0.5), summary)
        lsh_info: dict = {}  # split giant buckets, filled when the candidates step runs
        if cfg.previous:  # incremental: ranks gain a 1-char OLD/NEW tag, old-old pairs are skipped
            lsh_sigs = incremental.lsh_input(sigs, cfg.previous, sig_schema)
            rule = PREFIX_WIDTH[cfg.survivor] + 1
            cands = _step(workdir, "candidates", EDGE_SCHEMA, lambda: lsh.run(
                lsh_sigs, cfg.lsh, cfg.minhash.num_perm, p, lsh_info).map_batches(
                    incremental.without_old_pairs, batch_format="pyarrow", num_cpus=0.5), summary)
        else:
            cands = _step(workdir, "candidates", EDGE_SCHEMA,
                          lambda: lsh.run(sigs, cfg.lsh, cfg.minhash.num_perm, p, lsh_info), summary)
        summary["candidates"].update(lsh_info)

        def build_edges():
            if cfg.verify and cfg.previous:
                return incremental.verify_run(cands, ds, lsh_sigs, cfg.threshold, cfg.minhash.ngram, rule, p)
            if cfg.verify:
                return verify.run(cands, ds, cfg.threshold, cfg.minhash.ngram, rule, p)
            return cands.map_batches(unverified, batch_format="pyarrow", num_cpus=0.5)

        edges = _step(workdir, "edges", verify.SCORED_SCHEMA, build_edges, summary, after="candidates")
        comp_schema = components.EDGE_SCHEMA
        info: dict = {}
        comp = _step(workdir, "components", comp_schema, lambda: components.run(
            edges.select_columns(["src", "dst"]), p, cfg.max_rounds, info), summary, after="edges")
        summary["components"].update(info)

        def build_clusters():
            members = comp.map_batches(functools.partial(cluster_rows, rule=rule), batch_format="pyarrow",
                                       num_cpus=0.5)
            roots = (comp.map_batches(functools.partial(keyed_by_lo, num_partitions=p), batch_format="pyarrow",
                                      num_cpus=0.5)
                     .groupby("part", num_partitions=p)
                     .map_groups(functools.partial(root_rows, rule=rule), batch_format="pyarrow", num_cpus=0.5))
            return members.union(roots)

        _step(workdir, "clusters", CLUSTER_SCHEMA, build_clusters, summary, after="components")

        def build_near():
            near = comp
            if cfg.previous:  # earlier documents are not in this run: only new ones are marked
                near = near.map_batches(_new_only, batch_format="pyarrow", num_cpus=0.5)
            near = near.map_batches(functools.partial(near_reasons, rule=rule), batch_format="pyarrow",
                                    num_cpus=0.5)
            if reason_sets:  # an exact duplicate keeps its "dedup:exact" reason
                near = near.join(reason_sets[0].select_columns(["id"]), "left_anti", p, on=("id",))
            return near

        reason_sets.append(_step(workdir, "near_dups", exact.REASONS_SCHEMA, build_near, summary, after="components"))

    atomic.write_text(storage.join(workdir, "summary.json"), json.dumps(summary, indent=1))
    if not reason_sets:
        return ds
    reasons = reason_sets[0] if len(reason_sets) == 1 else reason_sets[0].union(reason_sets[1])
    return exact.mark(ds, reasons, p)
