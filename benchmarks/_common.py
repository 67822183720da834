"""Shared bits for benchmark scripts: machine description and the results file format."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(os.environ.get("RAYLM_RESULTS_DIR") or Path(__file__).resolve().parent / "results")


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gb, "gpu": gpu,
            "platform": platform.platform()}


def versions(*extra: str) -> dict:
    out = {"python": sys.version.split()[0]}
    for name in ("raylm", "ray", "torch", "pyarrow", "tokenizers", "datasketch", "numpy", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_result(name: str, records: dict | list[dict], extra_versions: tuple = ()) -> Path:
    """Write benchmarks/results/<name>.json; fills command, hardware, versions, date."""
    recs = records if isinstance(records, list) else [records]
    common = {"command": " ".join([Path(sys.argv[0]).name if sys.argv else "", *sys.argv[1:]]).strip(),
              "hardware": hardware(), "versions": versions(*extra_versions),
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    for r in recs:
        for k, v in common.items():
            r.setdefault(k, v)
        if ("ratio" not in r and isinstance(r.get("value"), int | float) and isinstance(r.get("baseline"), dict)
                and r["baseline"].get("value")):
            r["ratio"] = r["value"] / r["baseline"]["value"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(recs if isinstance(records, list) else recs[0], indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def ray_workers() -> int:
    """Ray worker processes on this machine (tasks and actors, idle or busy: titled `ray::...`)."""
    n = 0
    for p in Path("/proc").iterdir():
        try:
            n += p.name.isdigit() and (p / "cmdline").read_bytes().startswith(b"ray::")
        except OSError:  # gone meanwhile
            pass
    return n


def start_moto() -> tuple[object, str]:
    """A moto S3 server on a free port of 127.0.0.1, started; (server, endpoint). aws_env(endpoint)
    are the variables that point pyarrow, boto3 and Ray's workers at it."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def moto_s3_server() -> tuple[object, str]:
    """`start_moto` with its variables set in this process (start it before Ray, whose workers
    inherit them); (server, endpoint)."""
    server, endpoint = start_moto()
    os.environ.update(aws_env(endpoint))
    return server, endpoint
