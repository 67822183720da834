"""Peak memory of the cleaning pipeline at 1x and 10x input: does it stay flat as input grows?

Input: the four shared WARC files of clean_throughput.py, copied N times under distinct names
(1x = --copies, 10x = 10 * --copies). Document ids hash the file name, so every copy is a new
document, and dedup is not among the stages, so all copies reach every measured stage: 10x input
is 10x the records, pages and bytes at each stage (the stats in the results file show it).

Each variant runs at both sizes in a fresh process with its own local Ray (no dashboard),
configured as configs/web.yaml minus dedup and augment:
  clean:  WARC ingest -> extract -> normalise -> langid -> quality -> content -> pii, exactly the
          Dataset `raylm data` builds (pipeline.documents), consumed as a stream: the driver
          keeps only the per-block stats rows. 2 CPUs.
  data:   the whole `raylm data` (pipeline.run) on the same stages: cleaned documents
          materialised once in the object store, BPE sample to the driver, encode, shards. 2 CPUs.
  clean_3cpus, data_3cpus: the same with 3 logical CPUs (room for one task of each Ray Data
                        operator of the cleaning stream).
  clean_no_reservation: clean on 2 CPUs with Ray Data's per-operator resource reservation off
                        (DataContext.op_resource_reservation_enabled = False).
The last three isolate why the object store grows on 2 CPUs (below).

Memory is sampled every 0.2 s over every process in the run's session (the driver, Ray's GCS,
raylet and every worker) from /proc/<pid>/smaps_rollup (Linux only). The headline is the sum of
PSS (shared pages, the object store's included, split among the processes that map them, so
they count once); the RSS sum, which counts shared pages in every process, is given too, with a
per-process breakdown at the peak. Ray's own object-store counter (bytes of live objects, as
`ray memory --stats-only` reports it) is polled by the measured driver every 0.5 s.

What grows (the committed run; 10x = 123 MB of WARC, 14,080 records, 314 MB of HTML into
extract, 63 MB of text out of langid, 5.2 MB kept after pii): the whole tree's peak PSS goes up
4-11% in every variant (target: at most 50%). Most of the tree is Ray (driver ~360 MB, GCS,
raylet, Ray Data's helper actors, ~100-250 MB per worker), the same at either size; its peak
moves by +-100 MB with which workers are alive at the sampled moment. Input-sized parts:
(1) On 2 CPUs the object store holds the whole LangId output while the stream runs (61 MB at
10x, 7.5 at 1x). Ray Data reserves resources per operator; 2 CPUs cannot run one task of each
of the three operators (read->extract->normalise 1 CPU, LangId actor 0.5, quality->pii 1), so
the last waits until the first has finished: for that edge the stream becomes two bulk phases,
bounded by Ray Data's object-store budget (half the store), then backpressure. With 3 CPUs it
stays under 5 MB at either size. Switching the reservation off is no fix: it stayed flat in 2
of 4 runs (not in the committed one).
(2) By design, `raylm data` materialises the kept documents (5.8 MB at 10x; the dropped rows'
text, ~57 MB more, was kept with them until this benchmark found it) and their tokens (13 MB
peak with the shuffle), and sends the BPE sample to the driver (capped by
data.tokenizer.sample_bytes).

Usage: .venv/bin/python -m benchmarks.clean_memory [--shared ../shared/data] [--copies 4]
       [--variants clean,data,clean_3cpus,data_3cpus,clean_no_reservation]   (about 15 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_result

REPO = Path(__file__).resolve().parents[1]
WARCS = ("IAH-20080430204825-00000-blackbook.warc.gz", "cc-main-2020-34-excerpt.warc.gz",
         "dolma-sample-0000.warc.gz", "dolma-sample-0001.warc.gz")
STEPS = ["extract", "normalise", "langid", "quality", "content", "pii"]
OVERRIDES = ["data.steps=[extract, normalise, langid, quality, content, pii]", "cluster.include_dashboard=false"]
# variant -> (pipeline, Ray CPUs, Ray Data per-operator reservation on)
VARIANTS = {"clean": ("clean", 2, True), "data": ("data", 2, True), "clean_3cpus": ("clean", 3, True),
            "data_3cpus": ("data", 3, True), "clean_no_reservation": ("clean", 2, False)}
INTERVAL_S = 0.2
MB = 2**20


# --- the measured process: one pipeline on one input, on its own local Ray ---------------------

def child(variant: str, input_dir: str, out: str) -> None:
    import ray.data

    from raylm import config as C
    from raylm.cluster import connect
    from raylm.data import pipeline, stats
    from raylm.root import RootConfig

    mode, cpus, reservation = VARIANTS[variant]
    ray.data.DataContext.get_current().op_resource_reservation_enabled = reservation
    cfg = C.load(RootConfig, REPO / "configs" / "web.yaml",
                 [*OVERRIDES, f"cluster.num_cpus={cpus}", f"data.ingest.warc.paths=[{input_dir}]"])
    connect(cfg.cluster)
    store = _watch_object_store()
    t0 = time.time()
    if mode == "clean":
        ds = pipeline.documents(cfg.data, Path(out), cfg.seed)
        rows = [r["stats"] for r in ds.map_batches(stats.partial, batch_format="pyarrow").iter_rows()]
        report = stats.merge(rows, cfg.data.steps)
    else:
        pipeline.run(cfg.data, Path(out), cfg.seed)
        report = json.loads((Path(out) / "stats.json").read_text())
    summary = {"seconds": round(time.time() - t0, 1), "documents_read": report["documents_read"],
               "documents_kept": report["documents_kept"],
               "stages": {s["stage"]: f"docs {s['docs_in']} -> {s['docs_out']}, "
                                      f"bytes {s['bytes_in']} -> {s['bytes_out']}" for s in report["stages"]}}
    store = {**store, "timeline": "every 2 s, <s>:<MB in use>: " + store["timeline"].strip()}
    print("RESULT " + json.dumps({**summary, "object_store": store}), flush=True)


def _watch_object_store() -> dict:
    """Poll Ray's own object-store counters (the raylet's, as `ray memory --stats-only` shows them)
    every 0.5 s in a thread; the returned dict fills in as it runs: the maximum bytes in use,
    bytes spilled to disk, and a timeline "<s>:<MB in use>" every 2 s. Private Ray API (ray._private)."""
    import threading

    from ray._private import state
    from ray._private.internal_api import get_memory_info_reply

    out = {"max_used_mb": 0.0, "spilled_mb": 0.0, "timeline": ""}
    t0 = time.time()

    def poll():
        n = 0
        while True:
            try:
                st = get_memory_info_reply(state.state).store_stats
            except Exception:  # Ray is shutting down at exit
                return
            used = st.object_store_bytes_used / MB
            out["max_used_mb"] = round(max(out["max_used_mb"], used), 1)
            out["spilled_mb"] = round(st.spilled_bytes_total / MB, 1)
            if n % 4 == 0:
                out["timeline"] += f"{time.time() - t0:.0f}:{used:.1f} "
            n += 1
            time.sleep(0.5)

    threading.Thread(target=poll, daemon=True).start()
    return out


# --- the sampler: every process of the child's session, from /proc --------------------------

def _stat(pid: str) -> tuple[int, str] | None:
    """(session id, state) of a process, None when it is gone."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()  # state ppid pgrp session ...
    return int(f[3]), f[0]


def _kind(pid: int, root: int) -> tuple[str, str]:
    """(kind, title): kind is driver | gcs | raylet | workers | other; title the process's command
    line (Ray workers set it to ray::<what they run>, e.g. ray::IDLE, ray::MapBatches(Encoder))."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    if pid == root:
        return "driver", "driver"
    for key, name in (("gcs_server", "gcs"), ("raylet", "raylet"), ("ray::", "workers"),
                      ("default_worker", "workers")):
        if key in cmd:
            return name, cmd[:60] if name == "workers" else name
    return "other", cmd.split()[min(1, len(cmd.split()) - 1)][-40:] if cmd.split() else "?"


def _rollup(pid: int) -> dict[str, int] | None:
    """Rss, Pss, Pss_Anon, Pss_File, Pss_Shmem of one process, in bytes."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return None
    out = {}
    for ln in lines:
        k, v = ln.split(":", 1)
        if k in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
            out[k] = int(v.split()[0]) * 1024
    return out


def sample(root: int) -> dict:
    """One sample: totals over the session of `root`, and PSS by process kind."""
    tot = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_File": 0, "Pss_Shmem": 0}
    kinds: dict[str, int] = {}
    procs = []
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _stat(d)
        if st is None or st[0] != root or st[1] == "Z":
            continue
        r = _rollup(int(d))
        if r is None:
            continue
        n += 1
        for k in tot:
            tot[k] += r.get(k, 0)
        kind, title = _kind(int(d), root)
        kinds[kind] = kinds.get(kind, 0) + r["Pss"]
        procs.append((title, r["Pss"]))
    return {**tot, "processes": n, "pss_by_kind": kinds, "procs": sorted(procs, key=lambda x: -x[1])}


def measure(variant: str, input_dir: Path, work: Path) -> dict:
    out = work / f"out-{variant}-{input_dir.name}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))
    log = work / f"{variant}-{input_dir.name}.log"
    with open(log, "w") as f:
        cmd = [sys.executable, "-m", "benchmarks.clean_memory", "--child", variant,
               "--input", str(input_dir), "--out", str(out)]
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    peak, n_samples, t0 = {"Pss": -1}, 0, time.time()
    most: dict[str, int] = {}  # each part's own maximum over the run (they peak at different times)
    timeline = ""  # every 2 s: "<s>:<PSS MB>/<processes>"
    while p.poll() is None:
        s = sample(p.pid)
        if n_samples % round(2 / INTERVAL_S) == 0:
            timeline += f"{time.time() - t0:.0f}:{s['Pss'] / MB:.0f}/{s['processes']} "
        n_samples += 1
        if s["Pss"] > peak["Pss"]:
            peak = {**s, "at_s": round(time.time() - t0, 1)}
        for k, v in [("pss_shmem", s["Pss_Shmem"]), *s["pss_by_kind"].items()]:
            most[k] = max(most.get(k, 0), v)
        time.sleep(INTERVAL_S)
    text = log.read_text()
    if p.returncode != 0:
        raise SystemExit(f"{variant} on {input_dir} failed:\n{text[-4000:]}")
    result = json.loads(next(ln for ln in reversed(text.splitlines()) if ln.startswith("RESULT "))[7:])
    shutil.rmtree(out, ignore_errors=True)
    return {"peak_pss_mb": round(peak["Pss"] / MB, 1), "peak_rss_sum_mb": round(peak["Rss"] / MB, 1),
            "at_peak": {"pss_anon_mb": round(peak["Pss_Anon"] / MB, 1), "pss_file_mb": round(peak["Pss_File"] / MB, 1),
                        "pss_shmem_mb": round(peak["Pss_Shmem"] / MB, 1), "processes": peak["processes"],
                        "pss_by_kind_mb": {k: round(v / MB, 1) for k, v in sorted(peak["pss_by_kind"].items())},
                        "at_s": peak["at_s"],
                        "processes_mb": {f"{i:02d} {t[:40]}": round(v / MB, 1)
                                         for i, (t, v) in enumerate(peak["procs"])}},
            "max_over_run_mb": {k: round(v / MB, 1) for k, v in sorted(most.items())},
            "wall_s": round(time.time() - t0, 1), "samples": n_samples, **result,
            "timeline": "every 2 s, <s>:<PSS MB>/<processes>: " + timeline.strip()}


def make_input(shared: Path, copies: int, dst: Path) -> Path:
    """`copies` copies of each WARC, named c<k>-<name> so each copy's documents get new ids."""
    dst.mkdir(parents=True)
    for k in range(copies):
        for name in WARCS:
            shutil.copyfile(shared / "warc" / name, dst / f"c{k:03d}-{name}")
    return dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--copies", type=int, default=4, help="copies of the four WARCs at 1x (10x: ten times this)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--child", choices=list(VARIANTS))
    ap.add_argument("--input")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.input, args.out)

    records = []
    with tempfile.TemporaryDirectory(prefix="clean_memory-") as tmp:
        work = Path(tmp)
        inputs = {"1x": make_input(Path(args.shared), args.copies, work / "x1"),
                  "10x": make_input(Path(args.shared), 10 * args.copies, work / "x10")}
        for variant in args.variants.split(","):
            mode, cpus, reservation = VARIANTS[variant]
            runs = {}
            for scale, d in inputs.items():
                runs[scale] = r = measure(variant, d, work)
                print(f"{variant} {scale}: peak PSS {r['peak_pss_mb']:.0f} MB (RSS sum {r['peak_rss_sum_mb']:.0f} MB), "
                      f"object store max {r['object_store']['max_used_mb']} MB, {r['documents_read']:,} records, "
                      f"{r['documents_kept']:,} kept, {r['seconds']} s", flush=True)
            one, ten = runs["1x"], runs["10x"]
            grow = {k: round(ten["max_over_run_mb"].get(k, 0) - one["max_over_run_mb"].get(k, 0), 1)
                    for k in sorted({*one["max_over_run_mb"], *ten["max_over_run_mb"]})}
            records.append({
                "metric": f"{variant}_peak_memory_10x_over_1x", "value": ten["peak_pss_mb"] / one["peak_pss_mb"],
                "unit": "ratio of peak PSS summed over driver + Ray processes, 10x input / 1x", "target": 1.5,
                "baseline": {"name": "peak PSS (MB) of the same pipeline on the 1x input", "value": one["peak_pss_mb"]},
                "ratio": ten["peak_pss_mb"] / one["peak_pss_mb"],
                "pipeline": ("WARC ingest -> " + " -> ".join(STEPS) + (", streamed" if mode == "clean" else
                             ", then raylm data's materialise + BPE + encode + shards")),
                "ray_cpus": cpus, "ray_data_op_reservation": reservation,
                "peak_pss_mb": {"1x": one["peak_pss_mb"], "10x": ten["peak_pss_mb"]},
                "peak_pss_growth_mb": round(ten["peak_pss_mb"] - one["peak_pss_mb"], 1),
                "object_store_max_mb": {"1x": one["object_store"]["max_used_mb"],
                                        "10x": ten["object_store"]["max_used_mb"]},
                "growth_of_max_by_part_mb": grow,  # 10x - 1x of each part's own maximum
                "input": {"warcs": list(WARCS), "copies_1x": args.copies, "copies_10x": 10 * args.copies,
                          "warc_bytes_1x": sum(p.stat().st_size for p in inputs["1x"].iterdir()),
                          "warc_bytes_10x": sum(p.stat().st_size for p in inputs["10x"].iterdir())},
                "runs": runs, "sample_interval_s": INTERVAL_S})
            print(f"{variant}: 10x/1x peak PSS {records[-1]['value']:.2f} (+{records[-1]['peak_pss_growth_mb']} MB), "
                  f"object store max {records[-1]['object_store_max_mb']}", flush=True)
    write_result("clean_memory", records, extra_versions=("resiliparse", "fastwarc", "ftfy"))


if __name__ == "__main__":
    main()
