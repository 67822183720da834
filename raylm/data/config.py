"""`raylm data`'s configuration: the data section of a run's YAML (DataConfig, with each stage's
own config as a field), the map from a stage name to its function (STEPS, no registry), the
order a run executes them in (`plan`), and the fingerprint a finished run leaves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import yaml

from raylm.config import ConfigError, to_dict
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
from raylm.data.shards import ShardConfig
from raylm.data.split import SplitConfig
from raylm.data.tokenize import TokenizerConfig


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
