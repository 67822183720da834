"""Seeded text augmentation of the training split (EDA-style: Wei & Zou 2019, plus sentence
reordering and character noise).

`augment(table, cfg)` returns the input rows followed by augmented copies. Only kept rows of
the training split are augmented: when the table has a `cfg.split_column` column, rows whose
value is not `cfg.train_value` are passed through untouched; without that column every row is
taken as training data (the pipeline calls this on the train split only, after dedup).

Each copy gets a new stable id `sha1(id + "aug" + k)[:20]`, `augmented_from` = the original id
and `augment_op` = the operation used; originals get nulls in both. All randomness comes from
`random.Random(f"{seed}:{id}:{k}")`, so results do not depend on batch boundaries or order
(retry-safe: a rerun produces the same rows).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pyarrow as pa

from raylm.data import schema

OPS = ("synonym", "insert", "swap", "delete", "reorder", "char_noise")


@dataclass
class AugmentConfig:
    ratio: float = 0.1  # augmented copies per training doc (0.1 = one copy for ~10% of docs; 2.0 = two each)
    ops: list[str] = field(default_factory=lambda: list(OPS))  # operations to draw from, one per copy
    alpha: float = 0.1  # fraction of words changed by synonym/insert/swap/delete
    char_noise_rate: float = 0.02  # fraction of letters perturbed by char_noise
    seed: int = 0  # shared by all workers
    synonyms_path: str | None = None  # word<TAB>syn, syn lines; None = shipped raylm/data/lists/synonyms_en.txt
    split_column: str = "split"  # column naming each row's split, if present
    train_value: str = "train"  # value of split_column for training rows

    def __post_init__(self):
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops:
            raise ValueError(f"augment.ops: unknown {bad} or empty; valid: {list(OPS)}")
        if self.ratio < 0 or not 0 < self.alpha <= 1 or not 0 < self.char_noise_rate <= 1:
            raise ValueError("augment: ratio must be >= 0, alpha and char_noise_rate in (0, 1]")
        if self.synonyms_path is not None and not Path(self.synonyms_path).is_file():
            raise ValueError(f"augment.synonyms_path not found: {self.synonyms_path}")


@lru_cache(maxsize=4)
def load_synonyms(path: str | None) -> dict[str, list[str]]:
    text = Path(path).read_text("utf-8") if path else resources.files("raylm.data").joinpath(
        "lists", "synonyms_en.txt").read_text("utf-8")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or "\t" not in line:
            continue
        word, syns = line.split("\t", 1)
        out[word.strip().lower()] = [s.strip() for s in syns.split(",") if s.strip()]
    return out


_TOKEN = re.compile(r"(\S+)(\s*)")
_EDGE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)  # leading punct, core word, trailing punct


def _synonym_for(word: str, syn: dict[str, list[str]], rng: random.Random) -> str | None:
    pre, core, post = _EDGE.match(word).groups()
    choices = syn.get(core.lower())
    if not choices:
        return None
    s = rng.choice(choices)
    if core[:1].isupper():
        s = s[:1].upper() + s[1:]
    return pre + s + post


def _has_syn(word: str, syn: dict[str, list[str]]) -> bool:
    return _EDGE.match(word).group(2).lower() in syn


def _words(text: str) -> list[list[str]]:
    return [[w, s] for w, s in _TOKEN.findall(text)]


def _join(pairs: list[list[str]]) -> str:
    return "".join(w + s for w, s in pairs).strip()


def op_synonym(text, rng, cfg, syn):
    pairs = _words(text)
    idx = [i for i, (w, _) in enumerate(pairs) if _has_syn(w, syn)]
    for i in rng.sample(idx, min(len(idx), max(1, round(cfg.alpha * len(pairs))))):
        pairs[i][0] = _synonym_for(pairs[i][0], syn, rng)
    return _join(pairs)


def op_insert(text, rng, cfg, syn):
    pairs = _words(text)
    cands = [w for w, _ in pairs if _has_syn(w, syn)]
    if not cands:
        return text
    for _ in range(max(1, round(cfg.alpha * len(pairs)))):
        new = _EDGE.match(_synonym_for(rng.choice(cands), syn, rng)).group(2).lower()
        pairs.insert(rng.randrange(len(pairs) + 1), [new, " "])
    return _join(pairs)


def op_swap(text, rng, cfg, syn):
    pairs = _words(text)
    if len(pairs) < 2:
        return text
    for _ in range(max(1, round(cfg.alpha * len(pairs)))):
        i, j = rng.sample(range(len(pairs)), 2)
        pairs[i][0], pairs[j][0] = pairs[j][0], pairs[i][0]  # words move, whitespace/newlines stay
    return _join(pairs)


def op_delete(text, rng, cfg, syn):
    pairs = _words(text)
    if len(pairs) < 2:
        return text
    kept: list[list[str]] = []
    for w, s in pairs:
        if rng.random() >= cfg.alpha:
            kept.append([w, s])
        elif kept and "\n" in s:
            kept[-1][1] = s  # keep the line break of a deleted line-final word
    return _join(kept or [rng.choice(pairs)])


_SENT = re.compile(r"(?<=[.!?])\s+")


def op_reorder(text, rng, cfg, syn):
    paras = [_SENT.split(p) for p in text.split("\n")]
    orig = [list(p) for p in paras]
    for sents in paras:
        rng.shuffle(sents)
    if paras == orig:  # identity shuffle (likely with 2-3 sentences): swap one adjacent pair
        multi = [p for p in paras if len(p) > 1]
        if multi:
            p = rng.choice(multi)
            i = rng.randrange(len(p) - 1)
            p[i], p[i + 1] = p[i + 1], p[i]
    return "\n".join(" ".join(p) for p in paras)


def op_char_noise(text, rng, cfg, syn):
    chars = list(text)
    out = []
    i = 0
    while i < len(chars):
        c = chars[i]
        if c.isalpha() and rng.random() < cfg.char_noise_rate:
            kind = rng.randrange(4)
            if kind == 0 and i + 1 < len(chars):  # swap with next
                out += [chars[i + 1], c]
                i += 2
                continue
            if kind == 1:  # delete
                i += 1
                continue
            if kind == 2:  # substitute
                out.append(rng.choice("abcdefghijklmnopqrstuvwxyz"))
            else:  # duplicate
                out += [c, c]
        else:
            out.append(c)
        i += 1
    return "".join(out)


_OPS = {"synonym": op_synonym, "insert": op_insert, "swap": op_swap, "delete": op_delete,
        "reorder": op_reorder, "char_noise": op_char_noise}


def augment_text(text: str, doc_id: str, k: int, cfg: AugmentConfig) -> tuple[str, str] | None:
    """(new text, op) for copy `k` of a document, or None when no op changes it."""
    rng = random.Random(f"{cfg.seed}:{doc_id}:{k}")
    syn = load_synonyms(cfg.synonyms_path)
    ops = list(cfg.ops)
    rng.shuffle(ops)  # first op is the draw; the rest are fallbacks when it is a no-op
    for op in ops:
        new = _OPS[op](text, rng, cfg, syn)
        if new and new != text:
            return new, op
    return None


def n_copies(doc_id: str, cfg: AugmentConfig) -> int:
    """floor(ratio) copies, plus one more with probability frac(ratio), seeded by id."""
    whole = int(cfg.ratio)
    u = random.Random(f"{cfg.seed}:{doc_id}:n").random()
    return whole + (u < cfg.ratio - whole)


def aug_id(doc_id: str, k: int) -> str:
    return hashlib.sha1(f"{doc_id}\x00aug{k}".encode()).hexdigest()[:20]


def augment(table: pa.Table, cfg: AugmentConfig | None = None) -> pa.Table:
    """Originals (with null `augmented_from`/`augment_op`) followed by augmented copies."""
    cfg = cfg or AugmentConfig()
    table = table.drop_columns([c for c in ("augmented_from", "augment_op") if c in table.column_names])
    rows = table.to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    has_split = cfg.split_column in table.column_names
    new_rows = []
    for row, k in zip(rows, keep):
        if not k or not row["text"] or (has_split and row[cfg.split_column] != cfg.train_value):
            continue
        for c in range(n_copies(row["id"], cfg)):
            res = augment_text(row["text"], row["id"], c, cfg)
            if res is None:
                continue
            new_rows.append({**row, **{k: 0 for k in row if k.startswith("_bytes_")},  # earlier stages
                             "id": aug_id(row["id"], c), "text": res[0],             # counted the original
                             "augmented_from": row["id"], "augment_op": res[1]})
    n = table.num_rows
    out = table.append_column("augmented_from", pa.nulls(n, pa.string())).append_column(
        "augment_op", pa.nulls(n, pa.string()))
    if not new_rows:
        return out
    return pa.concat_tables([out, pa.Table.from_pylist(new_rows, schema=out.schema)])


def run(ds, cfg: AugmentConfig, ctx=None):
    """Ray Data stage over the train split only (the caller passes train docs)."""
    return ds.map_batches(augment, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)
