"""What a stage's output folder carries so that a rerun never mixes two configs' work.

Every stage folder (`<out>/data`, `<out>/train`, `<out>/finetune`, a sweep's folder) records, in
`fingerprint.json`, the config keys its output depends on and a fingerprint of its inputs (the
shards a training run reads). A rerun into the same folder compares before any work:

- same keys: the stage resumes (finished shards are skipped, training continues from its newest
  checkpoint);
- different keys: it refuses with one line naming them, unless `--overwrite`, which first moves
  the stage's old folder aside in one rename and deletes it;
- a folder that holds nothing but the saved config (a run that failed its checks) is no output.

Keys that only say where or how fast a stage runs (workers, GPUs, placement, logging,
`max_steps`, checkpoint keeping) may change between reruns: a training run can resume on other
hardware or train longer. Folders written before fingerprint.json existed are compared through
the `config.yaml` saved beside them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from raylm import atomic, storage
from raylm.config import to_dict

RECORD = "fingerprint.json"
# Saved beside the output but not output: a folder holding only these was never written to.
NOT_OUTPUT = {"config.yaml", RECORD, "logs", ".lock"}
# Keys that may change between reruns into the same folder (dotted prefixes).
RUNTIME = ("train.num_workers", "train.cpus_per_worker", "train.use_gpu", "train.resources",
           "train.label_selector", "train.max_failures", "train.keep_checkpoints", "train.keep_by",
           "train.log_interval", "train.eval_interval", "train.eval_batches", "train.peak_flops",
           "train.compile", "train.cpu_matmul", "train.fused_loss", "train.precision", "train.parallelism",
           "train.max_steps",
           "train.early_stopping_patience", "train.early_stopping_min_delta", "train.data_dir",
           "finetune.data_dir", "finetune.eval_batch_size", "data.label_selector",
           "model.activation_checkpointing")
# The config sections each stage's output depends on.
SECTIONS = {"data": ("seed", "data"), "train": ("seed", "model", "train"),
            "finetune": ("seed", "model", "train", "finetune"), "tune": ("seed", "model", "train", "tune")}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _is_runtime(key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in RUNTIME)


def record_of(cfg, stage: str, inputs: dict[str, str] | None = None) -> dict:
    """The record a stage writes: its config keys (runtime ones left out) and input fingerprints."""
    raw = to_dict(cfg)
    keys = {k: v for s in SECTIONS[stage] for k, v in flatten({s: raw[s]}).items() if not _is_runtime(k)}
    return {"stage": stage, "config": keys, "inputs": dict(inputs or {})}


def _previous(stage_dir: str, stage: str) -> dict | None:
    """The record the folder's output was written with; None when it holds no output."""
    p = storage.join(stage_dir, RECORD)
    if storage.is_file(p):
        return json.loads(storage.read_text(p))
    if all(name in NOT_OUTPUT or atomic.is_temp(name) for name in storage.listdir(stage_dir)):
        return None
    saved = storage.join(stage_dir, "config.yaml")
    if not storage.is_file(saved):
        return {"stage": stage, "config": {}, "inputs": {}, "unknown": True}
    raw = yaml.safe_load(storage.read_text(saved)) or {}
    keys = {k: v for s in SECTIONS[stage] if s in raw for k, v in flatten({s: raw[s]}).items()
            if not _is_runtime(k)}
    return {"stage": stage, "config": keys, "inputs": {}, "legacy": True}


def _defaults(stage: str) -> dict:
    """The config keys of a default RootConfig, as a stage records them."""
    from raylm.root import RootConfig

    return record_of(RootConfig(), stage)["config"]


def differences(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every key that changed (inputs included). A key only one side has
    (a field a newer or older raylm added or dropped) counts when its value is not the default."""
    out = []
    defaults = _defaults(new["stage"])
    for part in ("config", "inputs"):
        a, b = old.get(part, {}), new.get(part, {})
        if part == "inputs" and old.get("legacy"):
            continue  # an older raylm recorded no input fingerprints
        for k in sorted(set(a) | set(b)):
            if part == "config" and (k in a) != (k in b) and (a | b)[k] == defaults.get(k, (a | b)[k]):
                continue
            if a.get(k, "<unset>") != b.get(k, "<unset>"):
                out.append(f"{k}: {_short(a.get(k, '<unset>'))} -> {_short(b.get(k, '<unset>'))}")
    return out


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."


def claim(stage_dir: str | Path, record: dict, *, overwrite: bool = False) -> None:
    """Before a stage does any work: make `stage_dir` this record's, or refuse.

    Raises FileExistsError (one line, exit 2) when the folder holds output written with other
    config keys or inputs; with `overwrite` the old folder is removed first (moved aside in one
    rename, then deleted), so nothing of it is mixed into the new output."""
    stage_dir = storage.location(stage_dir)
    old = _previous(stage_dir, record["stage"])
    if old is not None and overwrite:
        remove(stage_dir)
    elif old is not None:
        changed = ["(written without a record of its config)"] if old.get("unknown") else differences(old, record)
        if changed:
            shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise FileExistsError(
                f"{stage_dir} holds {record['stage']} output of another config ({shown}): rerun with "
                f"--overwrite to replace it, or set another out")
    storage.makedirs(stage_dir)
    atomic.write_text(storage.join(stage_dir, RECORD), json.dumps(record, indent=2, default=str))


def remove(path: str | Path) -> None:
    """Delete a folder so that no reader sees half of it: one rename to a temp, then the delete.
    An object store has no rename: its objects are deleted one by one (the stage's record, which
    the next run writes first, tells a half-deleted folder from a finished one)."""
    if storage.is_remote(storage.location(path)):
        storage.delete(storage.location(path))
        return
    path = Path(path)
    if not path.exists():
        return
    tmp = atomic.temp_path(path)
    path.rename(tmp)
    shutil.rmtree(tmp)


def shards_fingerprint(manifest: dict) -> str:
    """What a training run's input is: the shards' checksums, dtype and vocabulary (not their path,
    so shards copied elsewhere are the same input)."""
    shards = sorted((s["name"], s["sha256"]) for split in manifest["splits"].values() for s in split["shards"])
    key = {"shards": shards, "vocab_size": manifest["vocab_size"], "dtype": manifest["dtype"],
           "eos_id": manifest.get("eos_id")}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


_held: dict[str, int] = {}  # out folder -> open lock file descriptor, held until this process exits
_leases: dict[str, "_Lease"] = {}  # object-store out -> this process's lease on it

LEASE_S = 120.0      # an object-store lock not renewed for this long is a dead run's: taken over
RENEW_S = 30.0       # how often a holder renews its object-store lock
SETTLE_S = 1.0       # wait after writing a lease before reading it back (two runs starting at once)


def lock(out: str | Path, command: str) -> None:
    """Hold a lock on `out` for the rest of this process, or refuse with one line.

    Local: `<out>/.lock` is flock()ed (the kernel drops it when the holder dies, so a stale lock
    from a killed run is simply taken over) and names its holder (host, PID, start time,
    command) for the refusal message. On file systems without flock (some network mounts) it
    locks nothing. Object store: a lease object (`_Lease`), since there is no flock there."""
    holder = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: " \
             f"raylm {command}"
    if storage.is_remote(storage.location(out)):
        _lease(storage.location(out), holder)
        return
    out = Path(out)
    key = str(out.resolve())
    if key in _held:
        return
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FileExistsError(f"{out} is in use by another raylm run ({other}): wait for it to finish, "
                              f"or set another out") from None
    except OSError:  # no flock here: run unlocked rather than refuse
        os.close(fd)
        return
    os.ftruncate(fd, 0)
    os.write(fd, (holder + "\n").encode())
    _held[key] = fd


class _Lease:
    """A lock on an object-store `out`: the object `<out>/.lock` holds this run's token, who it
    is and when it last renewed (the holder's clock). A lease renewed within LEASE_S is live
    and refuses other runs; an older one is a dead run's and is taken over. Taking it: write
    ours, wait SETTLE_S, read it back: of two runs starting together, the one whose write
    landed last holds it and the other refuses. A thread renews it every RENEW_S and stops if
    another run has taken it over. Best effort, as leases on a store without conditional writes
    are: two runs starting within the same second on hosts whose clocks differ by more than
    LEASE_S can both proceed."""

    def __init__(self, out: str, holder: str):
        import threading
        import uuid

        self.path, self.holder = storage.join(out, ".lock"), holder
        self.token = uuid.uuid4().hex
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._renew, name="raylm-lease", daemon=True)

    def read(self) -> dict | None:
        try:
            return json.loads(storage.read_text(self.path))
        except FileNotFoundError:
            return None
        except ValueError:  # a torn or foreign file: not a live lease
            return None

    def write(self) -> None:
        atomic.write_text(self.path, json.dumps({"token": self.token, "holder": self.holder, "renewed": time.time()}))

    def _renew(self) -> None:
        while not self.stop.wait(RENEW_S):
            try:
                now = self.read()
                if now is None or now.get("token") != self.token:
                    return  # taken over (we were silent too long): do not fight for it
                self.write()
            except OSError:  # a passing store error: the next renewal retries
                continue

    def release(self) -> None:
        self.stop.set()
        try:
            now = self.read()
            if now and now.get("token") == self.token:
                storage.delete(self.path)
        except OSError:
            pass


def _lease(out: str, holder: str) -> None:
    if out in _leases:
        return
    lease = _Lease(out, holder)
    now = lease.read()
    if now and time.time() - float(now.get("renewed", 0)) < LEASE_S:
        raise FileExistsError(f"{storage.public_uri(out)} is in use by another raylm run ({now.get('holder')}, "
                              f"renewed {time.time() - float(now['renewed']):.0f}s ago): wait for it to finish, "
                              f"or set another out (a dead run's lock is taken over after {LEASE_S:.0f}s)")
    lease.write()
    time.sleep(SETTLE_S)
    now = lease.read()
    if not now or now.get("token") != lease.token:
        raise FileExistsError(f"{storage.public_uri(out)} was taken by another raylm run starting at the same time "
                              f"({(now or {}).get('holder', 'unknown')}): set another out")
    lease.thread.start()
    if not _leases:
        import atexit

        atexit.register(release_locks)  # a finished or failed command removes its lease
    _leases[out] = lease


def release_locks() -> None:
    """Drop every lock this process holds (the tests run several commands in one process; the
    CLI calls it at exit, so an object-store lock is removed, not left to expire)."""
    for fd in _held.values():
        os.close(fd)
    _held.clear()
    for lease in _leases.values():
        lease.release()
    _leases.clear()
