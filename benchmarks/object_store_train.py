"""Training throughput with the shards on an object store against the same run with local shards.

`object_store_train_overhead` = training tokens/s with `train.data_dir` on a moto S3 server
(127.0.0.1) / tokens/s with the same shards on local disk, same model, same Ray Train run shape
(1 worker), alternating rounds (ABBA), best round each. Training from an object store copies the
shards once to node-local scratch and checks their sha256 before the first step (that copy is
timed apart, `fetch_s`), then memory-maps them as local shards are: the target is >= 0.95.

    python -m benchmarks.object_store_train          # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._common import moto_s3_server, write_result

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2, help="ABBA rounds")
    a = ap.parse_args()
    import boto3
    import pyarrow as pa
    import ray

    from raylm import storage
    from raylm.data import shards
    from raylm.data.tokenize import char_tokenizer
    from raylm.model.gpt import GPTConfig
    from raylm.train.config import ScheduleConfig, TrainConfig
    from raylm.train.trainer import fit

    server, endpoint = moto_s3_server()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="raylm-bench")
    work = Path(tempfile.mkdtemp(prefix="raylm-osbench-"))
    text = (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_text()
    paras = [p for p in text.split("\n\n") if p.strip()]
    docs = pa.table({"id": [f"d{i:05d}" for i in range(len(paras))], "text": paras,
                     "split": ["val" if i % 10 == 0 else "train" for i in range(len(paras))]})
    local = work / "shards"
    shards.write_local(docs, char_tokenizer(text), local, shards.ShardConfig(shard_tokens=50_000))
    remote = "s3://raylm-bench/shards"
    for f in sorted(local.iterdir()):
        if not f.name.startswith("."):
            storage.upload(f, f"{remote}/{f.name}")

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    model = GPTConfig(size="shakespeare-cpu", block_size=64)
    cfg = TrainConfig(max_steps=a.steps, batch_size=12, eval_interval=a.steps, eval_batches=2, log_interval=50,
                      num_workers=1, cpus_per_worker=2, schedule=ScheduleConfig(warmup_steps=10))
    tps: dict[str, list[float]] = {"local": [], "s3": []}
    fetch_s = []
    for r in range(a.rounds):
        for name in (["local", "s3"] if r % 2 == 0 else ["s3", "local"]):
            scratch = work / f"scratch-{name}-{r}"  # empty: every S3 round copies the shards afresh
            t0 = time.perf_counter()
            res = fit(model, cfg, str(local) if name == "local" else remote, str(work / f"out-{name}-{r}"), 1,
                      scratch=str(scratch))
            if name == "s3":
                fetch_s.append(round(time.perf_counter() - t0, 1))
            rows = [ln for ln in (work / f"out-{name}-{r}" / "metrics.jsonl").read_text().splitlines()]
            import json

            steady = [json.loads(x)["tokens_per_s"] for x in rows[1:] if "tokens_per_s" in json.loads(x)]
            tps[name].append(max(steady))  # after the first window: start-up is not throughput
            print(f"round {r} {name}: {tps[name][-1]:.0f} tokens/s (step {res['metrics']['step']})")
    ray.shutdown()
    server.stop()
    best = {k: max(v) for k, v in tps.items()}
    write_result("object_store_train", {
        "metric": "object_store_train_overhead", "value": round(best["s3"], 1), "unit": "training tokens/s",
        "baseline": {"name": "the same run with the same shards on local disk", "value": round(best["local"], 1)},
        "target": ">= 0.95 (ratio)", "rounds_tokens_per_s": tps, "s3_runs_wall_s_incl_fetch": fetch_s,
        "setup": f"moto S3 on 127.0.0.1; 4L/128 GPT, context 64, batch 12, 1 Ray Train worker x 2 CPUs, "
                 f"{a.steps} steps; shards {sum(f.stat().st_size for f in local.glob('*.bin')):,} bytes"})


if __name__ == "__main__":
    main()
