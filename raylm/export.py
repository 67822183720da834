"""Export to the Hugging Face layout: a folder `transformers` loads with no raylm installed.

raylm's GPT is GPT-2's architecture with exact GELU (HF `activation_function: gelu`), LayerNorm
eps 1e-5, learned positions and tied embeddings, so it maps onto `GPT2LMHeadModel` weight for
weight: nn.Linear weights (out, in) become GPT-2's Conv1D weights (in, out), and biases and
LayerNorm shifts a raylm model was built without (`model.bias: false`) are written as zeros.

A classifier with `pooling: last` becomes `GPT2ForSequenceClassification`, which pools the last
token that is not the pad token: raylm pads with end-of-text, so the two read the same
position. GPT-2's score layer has no bias; raylm's head does. The bias is folded into the final
LayerNorm's shift (delta = pinv(W) b, so W (h + delta) = W h + b exactly whenever W has full row
rank, which the check below confirms), which only the score layer reads. A lowercasing
classifier gets a Lowercase normalizer in its tokenizer. `pooling: mean` has no GPT-2
counterpart: export refuses it and says so.

A LoRA run's checkpoint exports merged (W + B A alpha / r per adapted layer): `load_model` and
`load_classifier` read it merged into its base, and a model given here with adapters still in
it is merged on a copy first, so the exported model needs no LoRA code.

Files: config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, generation_config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from raylm import atomic
from raylm.data.tokenize import EOS, UNK
from raylm.train import lora

LINEARS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def gpt2_state(sd: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    """raylm GPT state dict (no `lm_head`, it is tied) -> GPT-2 `transformer.*` tensors."""
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"]}

    def norm(src: str, dst: str) -> None:
        w = sd[f"{src}.weight"]
        out[f"{dst}.weight"] = w
        out[f"{dst}.bias"] = sd.get(f"{src}.bias", torch.zeros_like(w))

    for i in range(n_layer):
        b, h = f"blocks.{i}", f"transformer.h.{i}"
        norm(f"{b}.ln_1", f"{h}.ln_1")
        norm(f"{b}.ln_2", f"{h}.ln_2")
        for lin in LINEARS:
            w = sd[f"{b}.{lin}.weight"]  # (out, in)
            out[f"{h}.{lin}.weight"] = w.t().contiguous()  # Conv1D: (in, out)
            out[f"{h}.{lin}.bias"] = sd.get(f"{b}.{lin}.bias", torch.zeros(w.shape[0], dtype=w.dtype))
    norm("ln_f", "transformer.ln_f")
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


def gpt2_config(model_cfg, eos_id: int, **extra) -> dict:
    if getattr(model_cfg, "arch", "decoder") != "decoder":
        raise ValueError("raylm export writes GPT-2's (causal) layout; an encoder (model.arch: encoder) has no "
                         "faithful GPT-2 form and is not exported yet")
    d = model_cfg.dropout
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": model_cfg.vocab_size,
            "n_positions": model_cfg.block_size, "n_embd": model_cfg.n_embd, "n_layer": model_cfg.n_layer,
            "n_head": model_cfg.n_head, "n_inner": None, "activation_function": "gelu",
            "resid_pdrop": d, "embd_pdrop": d, "attn_pdrop": d, "layer_norm_epsilon": 1e-5,
            "initializer_range": model_cfg.init_std, "scale_attn_weights": True,
            "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "tie_word_embeddings": True, "bos_token_id": eos_id, "eos_token_id": eos_id, "pad_token_id": eos_id,
            "torch_dtype": "float32", "use_cache": True, **extra}


def tokenizer_files(tokenizer_json: str, max_len: int, lowercase: bool = False) -> dict[str, str]:
    """tokenizer.json (with a Lowercase normalizer when the model was trained on lowercased
    text), tokenizer_config.json and special_tokens_map.json for PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_str(tokenizer_json)
    if lowercase:
        tok.normalizer = normalizers.Lowercase() if tok.normalizer is None else \
            normalizers.Sequence([tok.normalizer, normalizers.Lowercase()])
    unk = UNK if tok.token_to_id(UNK) is not None else EOS  # byte-level BPE has no unknown token
    special = {"bos_token": EOS, "eos_token": EOS, "unk_token": unk, "pad_token": EOS}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_len,
              "clean_up_tokenization_spaces": False, "add_prefix_space": False, **special}
    return {"tokenizer.json": tok.to_str(), "tokenizer_config.json": json.dumps(config, indent=2),
            "special_tokens_map.json": json.dumps(special, indent=2)}


def _eos(tokenizer_json: str) -> int:
    from tokenizers import Tokenizer

    eos = Tokenizer.from_str(tokenizer_json).token_to_id(EOS)
    if eos is None:
        raise ValueError(f"the tokenizer has no {EOS} token: a GPT-2 export needs it as end of text")
    return eos


def _write(out: Path, tensors: dict, config: dict, files: dict[str, str]) -> Path:
    with atomic.directory(out) as tmp:
        save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name, text in files.items():
            (tmp / name).write_text(text)
    return out


def _merged(model):
    """`model` itself, or a copy with its LoRA adapters merged into the weights."""
    import copy

    return lora.merge(copy.deepcopy(model)) if lora.has_adapters(model) else model


def export_lm(model, tokenizer_json: str, out: str | Path, sampling: dict | None = None) -> Path:
    """A raylm GPT -> GPT2LMHeadModel folder at `out` (replaced whole)."""
    from raylm.train.checkpoint import model_state

    model = _merged(model)
    cfg = model.cfg
    eos = _eos(tokenizer_json)
    gen = {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": eos, **(sampling or {})}
    files = {**tokenizer_files(tokenizer_json, cfg.block_size), "generation_config.json": json.dumps(gen, indent=2)}
    return _write(Path(out), gpt2_state(model_state(model), cfg.n_layer), gpt2_config(cfg, eos), files)


def export_classifier(model, meta: dict, tokenizer_json: str, out: str | Path) -> Path:
    """A raylm SequenceClassifier (pooling last) -> GPT2ForSequenceClassification folder."""
    from raylm.train.finetune import classifier_state

    if meta.get("pooling") != "last":
        raise ValueError(f"this classifier pools by {meta.get('pooling')!r}; GPT2ForSequenceClassification reads "
                         f"the last token only, so it cannot be exported to the Hugging Face layout (fine-tune "
                         f"with finetune.pooling: last to export)")
    model = _merged(model)
    cfg = model.gpt.cfg
    eos = _eos(tokenizer_json)
    if meta.get("pad_id", eos) != eos:
        raise ValueError(f"the classifier pads with token {meta.get('pad_id')}, not end-of-text ({eos}): "
                         f"GPT-2 would pool another position")
    sd = {k.removeprefix("gpt."): v for k, v in classifier_state(model).items() if k.startswith("gpt.")}
    tensors = gpt2_state(sd, cfg.n_layer)
    w, b = model.head.weight.detach().double(), model.head.bias.detach().double()  # (K, C), (K,)
    delta = torch.linalg.pinv(w) @ b  # (C,): W delta = b when W has full row rank
    if not torch.allclose(w @ delta, b, atol=1e-6 * max(1.0, b.abs().max().item())):
        raise ValueError("the classifier head's bias cannot be folded into GPT-2's bias-free score layer "
                         "(its weight matrix does not have full row rank)")
    tensors["transformer.ln_f.bias"] = (tensors["transformer.ln_f.bias"].double() + delta).float()
    tensors["score.weight"] = w.float().contiguous()
    labels = meta["labels"]
    config = gpt2_config(cfg, eos, architectures=["GPT2ForSequenceClassification"], num_labels=len(labels),
                         id2label={str(i): lab for i, lab in enumerate(labels)},
                         label2id={lab: i for i, lab in enumerate(labels)})
    files = tokenizer_files(tokenizer_json, meta.get("max_len", cfg.block_size), meta.get("lowercase", False))
    return _write(Path(out), tensors, config, files)
