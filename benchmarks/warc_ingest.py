"""WARC ingest speed per core: raylm's reader vs warcio's own iteration on the same files.

Both read every record of the shared WARC/WET files from local disk in one process:
  - baseline: warcio ArchiveIterator, content_stream().read() of each response/conversion
    record (dechunked, decompressed payload bytes, no text decoding);
  - raylm: warc.read_warc, which also checks lengths, decodes charsets and builds rows.
  - context: FastWARC's bare iteration (the library raylm's reader is built on).
MB/s counts compressed input bytes. Passes are interleaved `--reps` times; medians are kept.

    .venv/bin/python -m benchmarks.warc_ingest [--data ../shared/data/warc] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks._common import write_result
from raylm.data.ingest.warc import WarcConfig, expand_paths, read_warc


def warcio_pass(files: list[str]) -> int:
    from warcio.archiveiterator import ArchiveIterator

    n = 0
    for f in files:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type in ("response", "conversion"):
                    rec.content_stream().read()
                    n += 1
    return n


def fastwarc_pass(files: list[str]) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    n = 0
    for f in files:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response | WarcRecordType.conversion):
                rec.reader.read()
                n += 1
    return n


def raylm_pass(files: list[str]) -> int:
    cfg = WarcConfig(content_types=[])  # decode every textual record, as the pipeline would with all types
    return sum(1 for f in files for _ in read_warc(f, cfg))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "warc"))
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    files = [f for f in expand_paths([args.data])]
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    readers = {"warcio": warcio_pass, "fastwarc": fastwarc_pass, "raylm": raylm_pass}
    times: dict[str, list[float]] = {k: [] for k in readers}
    counts = {k: fn(files) for k, fn in readers.items()}  # warm the page cache and imports
    for _ in range(args.reps):  # interleaved, so load from other processes hits all readers alike
        for name, fn in readers.items():
            t = time.perf_counter()
            fn(files)
            times[name].append(time.perf_counter() - t)
    results = {k: (mb / statistics.median(v), counts[k]) for k, v in times.items()}
    for name, (rate, n) in results.items():
        print(f"{name:9s} {rate:7.1f} MB/s  {n} records  (median of {args.reps} passes over {mb:.2f} MB)")
    rec = {"metric": "warc_ingest", "unit": "MB/s per core (compressed input)", "value": round(results["raylm"][0], 2),
           "baseline": {"name": "warcio ArchiveIterator content_stream().read(), 1 process",
                        "value": round(results["warcio"][0], 2)},
           "context": {"fastwarc_bare_iteration_mb_s": round(results["fastwarc"][0], 2),
                       "records": {k: v[1] for k, v in results.items()},
                       "files": [Path(f).name for f in files], "input_mb": round(mb, 3), "reps": args.reps,
                       "load_average_1m_at_end": round(os.getloadavg()[0], 1),
                       "note": "raylm also checks record lengths, undoes HTTP encodings, detects charsets, "
                               "decodes text and builds rows; warcio only yields payload bytes"}}
    write_result("warc_ingest", rec, extra_versions=("warcio", "fastwarc", "aiohttp"))


if __name__ == "__main__":
    main()
