"""The token shard format, its atomic writer and the manifest.

A shard `<split>-<k>.bin` is a flat little-endian array of token ids (uint16 when the vocab
fits, else uint32): the documents of that shard, each followed by EOS, concatenated. Loaders
`np.memmap` it. Beside it `<split>-<k>.idx.parquet` lists each document's provenance and its
token offset, so every token can be traced to its source, URL and license.

Documents go to shard `hash(id) mod n` and are ordered by id inside a shard, so the bytes of
every shard depend only on the documents, never on Ray's block boundaries or task timing.
Each shard is written to a temp name, renamed, then marked done (`<name>.done`, JSON with its
checksum): a rerun skips shards whose marker and checksum match. `manifest.json` is written
last; its presence means the whole output is complete. `check` tests finished shards against
it (sizes always, sha256 once per file state) on a rerun's skip path and before training;
`open_split` checks sizes where the shards are memory-mapped.

Two writers produce this format from the same parts (Encoder, `add_shard`, `write_shard`,
`write_manifest`): `write_all`, the Ray Data shell of `raylm data`, and `write_local`, one
process without Ray, for tests, benchmarks and small corpora. Same documents, tokenizer and seed:
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from raylm import atomic, progress, storage
from raylm.data.tokenize import EOS, Encoder, encode, token_dtype

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
VERIFIED = ".verified.json"  # `check`'s sha256 cache: .bin name -> {size, mtime_ns, sha256}
REBUILD = "rebuild it with `raylm data <config> --overwrite`"  # the end of every bad-shard error
_RACY_NS = 2_000_000_000     # see `check`
FORMAT_VERSION = 1
# Document columns carried into each shard's index where present (`split` only routes documents).
INDEX_COLUMNS = ("id", "split", "source", "uri", "url", "license", "content_type", "fetched_at", "lang",
                 "augmented_from", "augment_op", "repeat_of")


@dataclass
class ShardConfig:
    shard_tokens: int = 100_000_000   # target tokens per shard (uint16: 200 MB)
    num_shards: int = 0               # per split; 0 = ceil(tokens / shard_tokens)

    def __post_init__(self):
        if self.shard_tokens < 1 or self.num_shards < 0:
            raise ValueError("shard_tokens must be >= 1 and num_shards >= 0")


def shard_of(ids: list[str], n: int, seed: int) -> list[int]:
    """Deterministic shard index of each document id."""
    return [int.from_bytes(hashlib.sha1(f"{seed}:{i}".encode()).digest()[:8], "little") % n for i in ids]


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 of a local file or an object (streamed)."""
    fs, p = storage.resolve(storage.location(path))
    h = hashlib.sha256()
    with fs.open_input_stream(p) as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def write_shard(group: pa.Table, out_dir: str, dtype: str) -> pa.Table:
    """Write one shard from all its documents (any order); return one metadata row.

    `group` has columns shard (name, all equal), id, tokens, n_tokens, n_bytes and provenance.
    Skips the work when a done marker with a matching checksum exists (retry-safe).
    """
    name = group["shard"][0].as_py()
    bin_path, idx_path, done = (storage.join(out_dir, f"{name}{ext}") for ext in (".bin", ".idx.parquet", ".done"))
    if storage.is_file(done) and storage.is_file(bin_path):
        meta = json.loads(storage.read_text(done))
        if meta.get("sha256") == sha256_file(bin_path):
            if "sources" not in meta:  # a marker from before per-source counts: count its index
                index = pq.read_table(pa.BufferReader(storage.read_bytes(idx_path)))
                meta["sources"] = json.dumps(source_counts(index), sort_keys=True)
            return pa.table({k: [v] for k, v in meta.items()})
    group = group.sort_by("id")
    flat = group["tokens"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    arr = np.ascontiguousarray(flat.astype(np.dtype(dtype).newbyteorder("<"), copy=False))
    atomic.write_with(bin_path, arr.tofile)
    n_tok = group["n_tokens"].to_numpy()
    offsets = np.concatenate([[0], np.cumsum(n_tok)[:-1]]).astype(np.int64)
    index = group.drop_columns([c for c in ("tokens", "shard", "text", "drop", "split") if c in group.column_names])
    index = index.append_column("offset", pa.array(offsets))
    atomic.write_with(idx_path, lambda p: pq.write_table(index, p))
    meta = {"name": name, "file": f"{name}.bin", "index": f"{name}.idx.parquet", "sha256": sha256_file(bin_path),
            "tokens": int(arr.size), "documents": group.num_rows, "bytes": int(group["n_bytes"].to_numpy().sum()),
            "sources": json.dumps(source_counts(group), sort_keys=True)}  # a string: rows of shards with
    atomic.write_text(done, json.dumps(meta))                                 # other sources stay one schema
    return pa.table({k: [v] for k, v in meta.items()})


def source_counts(docs: pa.Table) -> dict[str, dict[str, int]]:
    """Documents, tokens and data.mix repeats per `source` of a shard's documents (or index)."""
    if "source" not in docs.column_names:
        return {}
    out: dict[str, dict[str, int]] = {}
    repeats = (pc.is_valid(docs["repeat_of"]).to_pylist() if "repeat_of" in docs.column_names
               else [False] * docs.num_rows)
    for src, n, rep in zip(docs["source"].to_pylist(), docs["n_tokens"].to_pylist(), repeats):
        d = out.setdefault(src or "unknown", {"documents": 0, "tokens": 0, "repeats": 0})
        d["documents"] += 1
        d["tokens"] += n
        d["repeats"] += int(rep)
    return out


def shard_counts(tokens: dict[str, int], cfg: ShardConfig) -> dict[str, int]:
    """Shards per split from its token count: cfg.num_shards, else enough of shard_tokens (>= 1)."""
    return {s: cfg.num_shards or max(1, math.ceil(n / cfg.shard_tokens)) for s, n in tokens.items()}


def add_shard(batch: pa.Table, n_shards: dict[str, int], seed: int) -> pa.Table:
    """Add `shard` = "<split>-<k>", k from a seeded hash of the id (`shard_of`)."""
    names = [f"{s}-{shard_of([i], n_shards[s], seed)[0]:05d}"
             for i, s in zip(batch["id"].to_pylist(), batch["split"].to_pylist())]
    return batch.append_column("shard", pa.array(names, type=pa.string()))


def tokenizer_fields(tok: Tokenizer) -> dict:
    """`write_manifest`'s tokenizer arguments for `tok`, saved as TOKENIZER beside the shards."""
    vocab = tok.get_vocab_size()
    return {"dtype": token_dtype(vocab).name, "vocab_size": vocab, "eos_id": tok.token_to_id(EOS),
            "tokenizer": TOKENIZER}


def write_all(docs, tok: Tokenizer, out_dir: str, cfg: ShardConfig, seed: int, tally=None,
              total_docs: int = 0) -> list[dict]:
    """Ray Data shell: tokenizer.json, then encode `docs` (a Dataset of kept documents with `split`),
    count tokens per split, assign shards, write each shard in one task. Returns the shards'
    metadata rows; the caller writes the manifest of them last (`write_manifest`).

    Only counts and metadata rows reach the driver. RAYLM_SHARD_PAUSE_S (read here, on the
    driver; 0 = off) holds each writing task after its shard is done: a fault-injection hook so
    tests/integration/test_data_kill_rerun.py can SIGKILL a run between finished shards.
    With `tally` (raylm.progress), encoded documents and written shards are counted and shown
    against `total_docs` and the shard count."""
    import ray

    out_dir = storage.location(out_dir)
    storage.makedirs(out_dir)
    tok_json = tok.to_str()
    atomic.write_text(storage.join(out_dir, TOKENIZER), tok_json)
    # Tasks, not an actor pool: the tokenizer (put in the object store once) is parsed once per
    # worker process (Encoder.cached); no actor holds constructor arguments it could lose.
    known: dict[str, int] = {}
    line = lambda snap, t: progress.shards_line(snap, total_docs, known.get("shards"), t)  # noqa: E731
    with progress.Live(progress.reader(tally), line):
        enc = docs.map_batches(_encode_counted, fn_args=(ray.put(tok_json), INDEX_COLUMNS, tally),
                               batch_format="pyarrow", num_cpus=0.5).materialize()
        tokens: dict[str, int] = {}
        for r in enc.map_batches(_token_sums, batch_format="pyarrow").take_all():
            tokens[r["split"]] = tokens.get(r["split"], 0) + r["n"]
        n_shards = shard_counts(tokens, cfg)
        known["shards"] = sum(n_shards.values())
        dtype = tokenizer_fields(tok)["dtype"]
        pause_s = float(os.environ.get("RAYLM_SHARD_PAUSE_S", "0"))
        rows = (enc.map_batches(add_shard, fn_args=(n_shards, seed), batch_format="pyarrow")
                .groupby("shard", num_partitions=sum(n_shards.values()))
                .map_groups(_write_paused, fn_args=(str(out_dir), dtype, pause_s, tally), batch_format="pyarrow")
                .take_all())
    return [dict(r) for r in rows]


def _encode_counted(batch: pa.Table, tok_json: str, columns, tally) -> pa.Table:
    out = encode(batch, tok_json, columns)
    progress.count(batch, tally, "encoded")
    return out


def write_local(docs: pa.Table, tok: Tokenizer, out_dir: str | Path, cfg: ShardConfig | None = None,
                seed: int = 0, extra: dict | None = None) -> dict:
    """Shards, indexes, tokenizer.json and manifest of `docs` (id, text, split, optional
    provenance columns) in this process, without Ray; returns the manifest. The bytes are those
    `write_all` writes for the same documents, tokenizer, shard config and seed. Holds every
    document's tokens in memory: for tests, benchmarks and corpora of a few hundred MB."""
    cfg = cfg or ShardConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok_json = tok.to_str()
    atomic.write_text(out / TOKENIZER, tok_json)
    enc = Encoder(tok_json, INDEX_COLUMNS)(docs)
    sums = _token_sums(enc)
    enc = add_shard(enc, shard_counts(dict(zip(sums["split"].to_pylist(), sums["n"].to_pylist())), cfg), seed)
    fields = tokenizer_fields(tok)
    metas = [write_shard(enc.filter(pc.equal(enc["shard"], name)), str(out), fields["dtype"]).to_pylist()[0]
             for name in sorted(set(enc["shard"].to_pylist()))]
    write_manifest(out, metas, **fields, extra=extra)
    return read_manifest(out)


def _token_sums(batch: pa.Table) -> pa.Table:
    g = batch.group_by("split").aggregate([("n_tokens", "sum")])
    return pa.table({"split": g["split"], "n": pc.cast(g["n_tokens_sum"], pa.int64())})


def _write_paused(group: pa.Table, out_dir: str, dtype: str, pause_s: float, tally=None) -> pa.Table:
    """`write_shard`, then wait `pause_s` seconds (the fault-injection hook of `write_all`)."""
    meta = write_shard(group, out_dir, dtype)
    if tally is not None:
        tally.add.remote("written", 1)
    if pause_s > 0:
        time.sleep(pause_s)
    return meta


def write_manifest(out_dir: str | Path, shards: list[dict], *, dtype: str, vocab_size: int,
                   eos_id: int, tokenizer: str, extra: dict | None = None) -> Path:
    """Write manifest.json (atomically, last) from the shards' metadata rows."""
    splits: dict[str, dict] = {}
    sources: dict[str, dict[str, int]] = {}
    for s in sorted(shards, key=lambda s: s["name"]):
        s = dict(s)
        split = s["name"].rsplit("-", 1)[0]
        d = splits.setdefault(split, {"tokens": 0, "documents": 0, "bytes": 0, "sources": {}, "shards": []})
        d["tokens"] += s["tokens"]
        d["documents"] += s["documents"]
        d["bytes"] += s["bytes"]
        per = s.pop("sources", None)
        for name, c in (json.loads(per) if isinstance(per, str) else per or {}).items():
            for target in (d["sources"].setdefault(name, {}), sources.setdefault(name, {})):
                for k, v in c.items():
                    target[k] = target.get(k, 0) + v
        d["shards"].append(s)
    manifest = {"format_version": FORMAT_VERSION, "dtype": dtype, "vocab_size": vocab_size, "eos_id": eos_id,
                "tokenizer": tokenizer, "splits": splits, "sources": dict(sorted(sources.items())), **(extra or {})}
    path = storage.join(out_dir, MANIFEST)
    atomic.write_text(path, json.dumps(manifest, indent=2))
    return path


def read_manifest(data_dir: str | Path) -> dict:
    path = storage.join(data_dir, MANIFEST)
    try:
        return json.loads(storage.read_text(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {MANIFEST} in {storage.public_uri(storage.location(data_dir))}: run "
                                f"`raylm data` first (or it did not finish)") from None


def all_shards(m: dict) -> list[dict]:
    return [s for split in m["splits"].values() for s in split["shards"]]


def _bad(s: dict, what: str) -> ValueError:
    return ValueError(f"shard {s['name']} {what}: {REBUILD}")


def _sized(data_dir: str, s: dict, dtype: str) -> tuple[int, int]:
    """(size, mtime_ns) of shard `s`'s .bin: it exists and holds its manifest token count
    (ValueError if not)."""
    path = storage.join(data_dir, s["file"])
    try:
        size, mtime = storage.stat(path)
    except FileNotFoundError:
        raise _bad(s, f"is missing ({path})") from None
    want = s["tokens"] * np.dtype(dtype).itemsize
    if size != want:
        raise _bad(s, f"has the wrong size ({path}: {size:,} bytes, the manifest says "
                      f"{s['tokens']:,} {dtype} tokens = {want:,} bytes)")
    return size, mtime


def check(data_dir: str | Path, *, full: bool = True) -> None:
    """Raise a one-line ValueError naming the first bad shard of `data_dir` and the command that
    rebuilds it; return quietly when every shard is whole.

    Always (cheap): the tokenizer file exists, and every shard's .bin exists with the size its
    manifest entry implies (tokens x dtype size) and its .idx.parquet exists. full=True adds each
    .bin's sha256 against the manifest, hashed once per file state: VERIFIED (hidden JSON beside
    the shards, written atomically) records size, mtime_ns and sha256 after a hash that matched,
    and a file whose size and mtime_ns still equal its entry is not read again. So `raylm data`'s
    skip path and every training run after it hash a shard once, not once per run. The cache
    catches accidents (a truncated copy, a flipped byte, a rebuilt shard), not a writer that
    restores size and mtime on purpose."""
    d = storage.location(data_dir)
    m = read_manifest(d)
    tok = storage.join(d, m["tokenizer"])
    if not storage.is_file(tok):
        raise ValueError(f"{tok} is missing (the tokenizer of the shards in {d}): {REBUILD}")
    cache = _read_cache(d) if full else {}
    names = {s["file"] for s in all_shards(m)}
    keep = {k: v for k, v in cache.items() if k in names}
    try:
        for s in all_shards(m):
            size, mtime = _sized(d, s, m["dtype"])
            if not storage.is_file(storage.join(d, s["index"])):
                raise _bad(s, f"has no index ({storage.join(d, s['index'])})")
            if not full:
                continue
            entry = {"size": size, "mtime_ns": mtime, "sha256": s["sha256"]}
            if keep.get(s["file"]) == entry:
                continue
            keep.pop(s["file"], None)
            started = time.time_ns()
            got = sha256_file(storage.join(d, s["file"]))
            if got != s["sha256"]:
                raise _bad(s, f"does not match its checksum ({storage.join(d, s['file'])}: sha256 {got[:12]}..., "
                              f"the manifest says {s['sha256'][:12]}...)")
            # Cache only a file that did not change while it was hashed and whose mtime is older
            # than the hash by more than a coarse file-system clock tick (2 s, as FAT; ext4: ~4 ms):
            # a write in the same tick as the hash would otherwise keep the entry valid.
            if storage.stat(storage.join(d, s["file"])) == (size, mtime) and mtime < started - _RACY_NS:
                keep[s["file"]] = entry
    finally:
        if full and keep != cache:
            _write_cache(d, keep)


def _read_cache(d: str) -> dict:
    try:
        cache = json.loads(storage.read_text(storage.join(d, VERIFIED)))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(d: str, cache: dict) -> None:
    try:
        atomic.write_text(storage.join(d, VERIFIED), json.dumps(cache, indent=1, sort_keys=True))
    except OSError as e:  # read-only shards: every run hashes them again, nothing worse
        log.debug("cannot write %s: %s", storage.join(d, VERIFIED), e)


def verify(data_dir: str | Path) -> list[str]:
    """The names of the shards whose .bin is missing or does not match its sha256 (all hashed,
    no cache); `check` is what runs call."""
    d = storage.location(data_dir)

    def whole(s: dict) -> bool:
        path = storage.join(d, s["file"])
        return storage.is_file(path) and sha256_file(path) == s["sha256"]

    return [s["name"] for s in all_shards(read_manifest(d)) if not whole(s)]


def localize(data_dir: str | Path, splits: tuple[str, ...], scratch: str | Path) -> str:
    """A local folder holding `data_dir`'s manifest, tokenizer and the shards of `splits`: the
    folder itself when it is local; for an object store, copies under `scratch` (node-local
    disk), each checked against the manifest's sha256 (a mismatch names the shard) and kept for
    the next run on this node (`<scratch>/shards-<checksums>/`, so other shards never mix in).
    Workers of one node share one copy: a lock file serialises them, and only missing or
    damaged files are fetched."""
    import fcntl

    src = storage.location(data_dir)
    if not storage.is_remote(src):
        return src
    m = read_manifest(src)
    want = [s for split in splits for s in m["splits"].get(split, {"shards": []})["shards"]]
    key = hashlib.sha256(json.dumps(sorted(s["sha256"] for s in all_shards(m))).encode()).hexdigest()[:16]
    dest = Path(scratch) / f"shards-{key}"
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".shards-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        for name in (MANIFEST, m["tokenizer"]):
            if not (dest / name).is_file():
                storage.download(storage.join(src, name), dest / name)
        verified = _read_cache(str(dest))
        for s in want:
            local = dest / s["file"]
            st = local.stat() if local.is_file() else None
            if st and verified.get(s["file"], {}).get("sha256") == s["sha256"] \
                    and verified[s["file"]].get("size") == st.st_size:
                continue
            storage.download(storage.join(src, s["file"]), local)
            got = sha256_file(local)
            if got != s["sha256"]:
                local.unlink()
                raise _bad(s, f"does not match its checksum after the copy from {storage.public_uri(src)} "
                              f"(sha256 {got[:12]}..., the manifest says {s['sha256'][:12]}...)")
            st = local.stat()
            verified[s["file"]] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": s["sha256"]}
        _write_cache(str(dest), verified)
    return str(dest)


def open_split(data_dir: str | Path, split: str) -> list[np.memmap]:
    """Memory-map every shard of `split`, in manifest order, each checked to have its manifest
    size (a truncated shard is a one-line ValueError, never an IndexError mid-training). The
    folder must be local: `localize` an object-store one first."""
    d = storage.location(data_dir)
    if storage.is_remote(d):
        raise ValueError(f"{d} is on an object store: memory-mapping needs a local copy (shards.localize)")
    m = read_manifest(d)
    if split not in m["splits"]:
        raise ValueError(f"split {split!r} not in {data_dir} (has: {', '.join(m['splits'])})")
    out = []
    for s in m["splits"][split]["shards"]:
        _sized(d, s, m["dtype"])
        out.append(np.memmap(Path(d) / s["file"], dtype=np.dtype(m["dtype"]).newbyteorder("<"), mode="r"))
    return out
