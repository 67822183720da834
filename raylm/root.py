"""The file a user writes: one YAML with a section per component.

This class only composes the components' own configs; each command hands every function its
own section (STYLE.md 3), never this root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raylm.cluster import ClusterConfig
from raylm.data.pipeline import DataConfig
from raylm.eval.lm import EvalConfig
from raylm.model.gpt import GPTConfig
from raylm.tracking import TrackingConfig
from raylm.train.config import TrainConfig
from raylm.train.finetune import FinetuneConfig
from raylm.tune.config import TuneConfig


@dataclass
class RootConfig:
    out: str = "runs/default"   # output folder: data/, train/, eval/ and config.yaml go here
    seed: int = 1337            # one seed for splits, shuffles, init and sampling, shared by all workers
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: GPTConfig = field(default_factory=GPTConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # MLflow runs of train, finetune, eval, tune
