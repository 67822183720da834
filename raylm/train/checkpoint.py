"""Checkpoints: weights as safetensors, the rest as a weights_only-loadable torch file.

Layout of one checkpoint directory:
  model.safetensors   model weights (tied lm_head stored once, as wte)
  model.json          the model config, to rebuild the model and refuse a shape mismatch
  state.pt            optimizer, step, data position, RNG states, early-stopping state;
                      loaded with torch.load(weights_only=True): no pickled code runs.
  tokenizer.json      the tokenizer the model was trained with (generate, export, and the check
                      that continued pretraining reads shards of the same tokenizer)
  checksums.json      sha256 of every other file; `verify` checks them before a resume, so a
                      corrupt newest checkpoint is skipped for the one before (loop.py).

A LoRA run's checkpoint (lora.py) holds only the adapters (and a classifier's head) in
model.safetensors; model.json's "lora" names its rank, scale, targets and base checkpoint (path
or object-store URI, and the sha256 of its checksums.json). `read_weights` merges the adapters
into the base's weights, so `load_model` / `load_weights` give a plain model; the base must stay
where it was (a changed or missing base is a clear error, never a silent mismatch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from raylm import atomic
from raylm.config import from_dict
from raylm.model.gpt import GPT, GPTConfig
from raylm.storage import from_uri, is_remote
from raylm.train import lora

TIED = "lm_head.weight"
CHECKSUMS = "checksums.json"


def model_state(model: torch.nn.Module, weights: dict | None = None, tied: str = TIED) -> dict[str, torch.Tensor]:
    """State dict for safetensors: DDP/compile prefixes off, the tied output matrix dropped."""
    sd = {k.removeprefix("module.").removeprefix("_orig_mod."): v.detach().cpu().contiguous()
          for k, v in (weights if weights is not None else model.state_dict()).items()}
    sd.pop(tied, None)  # shares storage with wte.weight; safetensors refuses shared tensors
    return sd


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 22):
            h.update(b)
    return h.hexdigest()


def write_checksums(directory: Path) -> None:
    """checksums.json: sha256 of every file in a checkpoint directory being written."""
    sums = {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != CHECKSUMS}
    (directory / CHECKSUMS).write_text(json.dumps(sums, indent=1))


def verify(path: str | Path) -> list[str]:
    """Files of a checkpoint whose content is not what was written (missing, or another sha256);
    [] when all match. A checkpoint from before checksums.json existed cannot be checked: []."""
    path = Path(path)
    listed = path / CHECKSUMS
    if not listed.is_file():
        return [] if (path / "model.json").is_file() else ["model.json"]
    try:
        sums = json.loads(listed.read_text())
    except ValueError:
        return [CHECKSUMS]
    return [name for name, digest in sums.items() if not (path / name).is_file() or _sha256(path / name) != digest]


def save(path: str | Path, model: torch.nn.Module, model_cfg: GPTConfig, state: dict | None = None,
         extra: dict | None = None, weights: dict | None = None, files: dict[str, str] | None = None) -> Path:
    """Write a checkpoint directory atomically (temp dir, then rename). `weights` overrides
    `model.state_dict()` (a gathered full state dict under FSDP); `files` are extra text files
    (name -> content), e.g. the tokenizer, so the checkpoint is self-contained."""
    path = Path(path)
    with atomic.directory(path) as tmp:
        save_file(model_state(model, weights), tmp / "model.safetensors")
        (tmp / "model.json").write_text(json.dumps({"model": asdict(model_cfg), **(extra or {})}, indent=2))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        if state is not None:
            torch.save(state, tmp / "state.pt")
        write_checksums(tmp)
    return path


def read_model_config(path: str | Path) -> GPTConfig:
    meta = json.loads((Path(path) / "model.json").read_text())
    return from_dict(GPTConfig, meta["model"], "checkpoint model")  # explicit fields win over size


class CheckpointMismatch(ValueError):
    """A whole, readable checkpoint of another model (a config error, never skipped as corrupt)."""


def load_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> list[str]:
    """Load weights into `model` (or its `.module`); error on a shape mismatch, naming it.

    A plain model gets the checkpoint's full weights (`read_weights`: a LoRA checkpoint's merged
    into its base); a model with LoRA adapters (a LoRA run resuming) gets the adapters alone, its
    base weights being in it already. Returns the model's keys that the checkpoint did not have
    (only when strict=False, e.g. a new classification head)."""
    target = getattr(model, "module", model)
    adapted = lora.has_adapters(target)
    sd = load_file(str(Path(path) / "model.safetensors")) if adapted else read_weights(path)
    own = target.state_dict()
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            raise CheckpointMismatch(f"checkpoint {path} does not fit this model: {k} has shape {tuple(v.shape)} "
                             f"in the checkpoint and {tuple(own[k].shape)} in the model (model config differs)")
    missing, unexpected = target.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != TIED]
    if adapted:  # the base weights come from init_from, not from this checkpoint
        missing = [k for k in missing if lora.is_stored_adapter(k)]
    if strict and (missing or unexpected):
        raise CheckpointMismatch(f"checkpoint {path} does not fit this model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return missing


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The full weights of a checkpoint: its model.safetensors, or for a LoRA checkpoint its
    base's full weights (recursively) with its own tensors put over them and the adapters merged."""
    path = Path(path)
    sd = load_file(str(path / "model.safetensors"))
    meta = json.loads((path / "model.json").read_text())
    rec = meta.get("lora")
    if not rec:
        return sd
    base = _base_dir(rec, path)
    full = read_weights(base)
    if meta.get("task") == "classify" and json.loads((base / "model.json").read_text()).get("task") != "classify":
        full = {f"gpt.{k}": v for k, v in full.items()}  # a classifier on a language model's body
    full.update(sd)  # adapters, and a classifier's own head over a base classifier's
    return lora.merge_state(full, rec["alpha"] / rec["r"])


def identity(path: str | Path) -> str:
    """What a checkpoint is: sha256 of its checksums.json (of model.json when it has none)."""
    d = Path(path)
    listed = d / CHECKSUMS if (d / CHECKSUMS).is_file() else d / "model.json"
    return hashlib.sha256(listed.read_bytes()).hexdigest()


def lora_record(cfg, base: str | Path) -> dict:
    """model.json's "lora" entry of a LoRA run started from checkpoint `base`: the adapter
    config, and where the base is (its object-store URI when `base` is a local copy of one)."""
    source = Path(base) / "SOURCE"  # written by `fetch` beside a copied object-store checkpoint
    where = source.read_text().strip() if source.is_file() else str(Path(base).resolve())
    return {**asdict(cfg), "base": where, "base_sha256": identity(base)}


def _base_dir(rec: dict, path: Path) -> Path:
    """The local folder of a LoRA checkpoint's base, checked to be the one it was trained on."""
    from raylm.storage import scratch

    where = rec["base"]
    gone = (f"{path} is a LoRA checkpoint (adapters only) whose base checkpoint {where} is not there; put the base "
            f"back where this run was started from (its finetune.init_from)")
    try:
        base = Path(fetch(where, scratch(None, "lora-base")))  # an object-store base is copied once
    except FileNotFoundError as e:
        raise FileNotFoundError(gone) from e
    if not (base / "model.json").is_file():
        raise FileNotFoundError(gone)
    if identity(base) != rec["base_sha256"]:
        raise CheckpointMismatch(f"{path} is a LoRA checkpoint trained on base {where}, but the checkpoint there now "
                                 f"is another one (its checksums differ); its adapters do not fit it")
    return base


def load_state(path: str | Path) -> dict | None:
    p = Path(path) / "state.pt"
    return torch.load(p, map_location="cpu", weights_only=True) if p.exists() else None


def load_model(path: str | Path, device: str = "cpu") -> GPT:
    """Rebuild the model saved at `path` and load its weights."""
    model = GPT(read_model_config(path))
    load_weights(model, path)
    return model.to(device)


# ---------------------------------------------------------------- checkpoints on object stores

_SCHEMES = {"s3": "s3", "gcs": "gs"}  # pyarrow FileSystem.type_name -> URI scheme


def uri_of(ray_checkpoint) -> str:
    """A Ray Train checkpoint as one string: its local path, or `s3://...` / `gs://...` when Ray
    stored it on an object store (Checkpoint.path alone drops the scheme)."""
    fs, path = ray_checkpoint.filesystem, ray_checkpoint.path
    scheme = _SCHEMES.get(getattr(fs, "type_name", "local"))
    return f"{scheme}://{path}" if scheme and "://" not in path else path


def fetch(ck: str, cache_dir: str | Path) -> str:
    """A local directory holding checkpoint `ck`: `ck` itself when it is a local path, else a copy
    of the object-store checkpoint under cache_dir (downloaded once, atomically; reused after).

    Put cache_dir under the run's `out` (a shared file system on a cluster) so Ray workers on
    other nodes read the same copy."""
    if not is_remote(ck):
        return ck.removeprefix("file://")
    import pyarrow.fs as pafs

    dest = Path(cache_dir) / hashlib.sha1(ck.encode()).hexdigest()[:16]
    if (dest / "model.json").is_file():
        return str(dest)
    fs, path = from_uri(ck)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"checkpoint {ck} not found (no such directory on the object store)")
    with atomic.directory(dest) as tmp:
        pafs.copy_files(path, str(tmp), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        if not (tmp / "model.json").is_file():
            raise FileNotFoundError(f"{ck} is not a raylm checkpoint (no model.json)")
    (dest / "SOURCE").write_text(ck + "\n")
    return str(dest)
