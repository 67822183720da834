"""Fine-tuning from a pretrained checkpoint: continued pretraining and classification heads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FinetuneConfig:
    init_from: str | None = None  # checkpoint dir to start from; None = this run's pretraining checkpoint
    data_dir: str | None = None   # continued pretraining: shards of the new (domain) text; None = this run's
