"""model.arch: encoder (issue 26 item 1): bidirectional attention, one embedding row for the
mask token, no generation, and the config checks across sections."""

from __future__ import annotations

import pytest
import torch

from raylm import config as C
from raylm.model.gpt import GPT, GPTConfig
from raylm.root import RootConfig


def _model(arch):
    torch.manual_seed(0)
    return GPT(GPTConfig(arch=arch, n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=20)).eval()


def test_encoder_attends_both_ways_decoder_only_back():
    x = torch.randint(0, 19, (1, 16))
    later = x.clone()
    later[0, -1] = (x[0, -1] + 1) % 19  # change the last token only
    for arch, earlier_changes in (("encoder", True), ("decoder", False)):
        m = _model(arch)
        a, b = m(x)[0], m(later)[0]
        assert torch.allclose(a[0, :-1], b[0, :-1], atol=1e-6) is not earlier_changes, arch


def test_encoder_vocab_has_the_mask_token_and_does_not_generate():
    assert GPTConfig(arch="encoder").with_vocab(100, "t").vocab_size == 101
    assert GPTConfig().with_vocab(100, "t").vocab_size == 100
    with pytest.raises(ValueError, match="smaller than the 100 tokens of t plus the mask token"):
        GPTConfig(arch="encoder", vocab_size=100).with_vocab(100, "t")
    m = _model("encoder")
    with pytest.raises(ValueError, match="an encoder .* does not generate"):
        m.generate(torch.zeros(1, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="does not generate"):
        m.cached(torch.zeros(1, 2, dtype=torch.long))


def test_masked_loss_counts_masked_positions_only():
    m = _model("encoder")
    x = torch.randint(0, 19, (2, 16))
    y = torch.full((2, 16), -1)
    y[0, 3], y[1, 7] = 5, 9
    logits, loss = m(x, y)
    expect = torch.nn.functional.cross_entropy(torch.stack([logits[0, 3], logits[1, 7]]).float(),
                                               torch.tensor([5, 9]))
    assert torch.allclose(loss, expect)


@pytest.mark.parametrize("overrides,match", [
    (["model.arch=encoder", "train.objective=clm"], "train.objective clm does not fit model.arch encoder"),
    (["train.objective=mlm"], "train.objective mlm does not fit model.arch decoder"),
    (["model.arch=encoder", "finetune.lm_loss_weight=0.5"], "an encoder has none"),
])
def test_config_checks_across_sections(overrides, match):
    with pytest.raises(C.ConfigError, match=match):
        C.load(RootConfig, None, overrides)
    assert C.load(RootConfig, None, ["model.arch=encoder"]).train.objective is None  # follows the arch
