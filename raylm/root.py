"""The file a user writes: one YAML with a section per component.

This class only composes the components' own configs; each command hands every function its
own section (STYLE.md 3), never this root.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raylm.cluster import ClusterConfig
from raylm.config import ConfigError
from raylm.data.config import DataConfig
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

    def __post_init__(self):
        """Checks across sections: the objective fits the architecture, and fine-tuning pools
        and trains in a way the architecture supports (an encoder's pooling is checked when a
        classifier is fine-tuned: `finetune.pooling` defaults to a decoder's `last`)."""
        arch, obj = self.model.arch, self.train.objective
        if obj is not None and obj != ("mlm" if arch == "encoder" else "clm"):
            raise ConfigError(f"train.objective {obj} does not fit model.arch {arch}: a decoder trains on clm (next "
                              f"token), an encoder on mlm (masked tokens); leave train.objective unset to follow "
                              f"model.arch")
        ft = self.finetune
        if arch == "decoder" and ft.pooling == "first":
            raise ConfigError("finetune.pooling first: a decoder's first token has read only itself; use last or "
                              "mean")
        if arch == "encoder" and ft.lm_loss_weight > 0:
            raise ConfigError("finetune.lm_loss_weight is the next-token auxiliary loss of a decoder; an encoder "
                              "has none: set it to 0")
