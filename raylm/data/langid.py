"""Language identification with py3langid (langid.py's model, shipped inside the wheel:
nothing is downloaded at run time).

Adds `lang` (ISO 639-1 code, null for rows dropped earlier) and `lang_score` (the model's
normalised probability, float32) and tags rows "langid:not_allowed" (language outside
`allowed`) or "langid:low_score" (probability below `min_score`).
Only the first `max_chars` characters are classified: cost is linear in length (~3.5 MB/s per
core) and a page's language is settled well before 2,000 characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from raylm.data import schema


@dataclass
class LangIdConfig:
    allowed: list[str] = field(default_factory=lambda: ["en"])  # ISO 639-1 codes to keep; empty = keep all
    min_score: float = 0.5  # min normalised probability of the top language
    candidates: list[str] = field(default_factory=list)  # restrict the model to these codes; empty = all 97
    max_chars: int = 2000  # chars classified per document (prefix)
    num_actors: int = 2  # max actor-pool size in `run` (each holds the ~3 MB model)
    actor_cpus: float = 0.5  # CPUs reserved per actor (fractional: the test machine has 2 cores)

    def __post_init__(self):
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError("langid.min_score must be in [0, 1]")
        if self.max_chars < 1 or self.num_actors < 1 or self.actor_cpus <= 0:
            raise ValueError("langid.max_chars and num_actors must be >= 1, actor_cpus > 0")
        if self.candidates and self.allowed and not set(self.allowed) <= set(self.candidates):
            raise ValueError(f"langid.allowed {self.allowed} must be a subset of langid.candidates {self.candidates}")


class LangId:
    """Callable over a document table; loads the model once (about 0.5 s)."""

    def __init__(self, cfg: LangIdConfig | None = None):
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        self.cfg = cfg or LangIdConfig()
        self.model = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
        if self.cfg.candidates:
            unknown = set(self.cfg.candidates) - set(self.model.nb_classes)
            if unknown:
                raise ValueError(f"langid.candidates: model has no {sorted(unknown)}")
            self.model.set_languages(self.cfg.candidates)

    def classify(self, text: str) -> tuple[str, float]:
        lang, score = self.model.classify(text[: self.cfg.max_chars])
        return lang, float(score)

    def __call__(self, table: pa.Table) -> pa.Table:
        cfg = self.cfg
        allowed = set(cfg.allowed)
        keep = schema.kept_mask(table).to_pylist()
        langs, scores, reasons = [], [], []
        for t, k in zip(table["text"].to_pylist(), keep):
            if not k or not t:
                langs.append(None)
                scores.append(None)
                reasons.append(None if not k else "langid:empty")
                continue
            lang, score = self.classify(t)
            langs.append(lang)
            scores.append(score)
            if allowed and lang not in allowed:
                reasons.append("langid:not_allowed")
            elif score < cfg.min_score:
                reasons.append("langid:low_score")
            else:
                reasons.append(None)
        for name, arr in (("lang", pa.array(langs, pa.string())), ("lang_score", pa.array(scores, pa.float32()))):
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, arr)
            else:
                table = table.append_column(name, arr)
        return schema.set_drop(table, reasons)


def apply(table: pa.Table, cfg: LangIdConfig | None = None) -> pa.Table:
    """One-off call (loads the model each time); batch pipelines use `LangId` or `run`."""
    return LangId(cfg)(table)


def run(ds, cfg: LangIdConfig, ctx=None):
    """Ray Data stage: an actor pool so each worker loads the model once."""
    import ray.data

    return ds.map_batches(LangId, fn_constructor_kwargs={"cfg": cfg}, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cfg.num_actors),
                          num_cpus=cfg.actor_cpus)
