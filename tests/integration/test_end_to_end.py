"""data -> train (Ray Train, 2 DDP workers) -> eval through the CLI, on the shared session Ray."""

import json
from pathlib import Path

import pytest

from raylm.cli import main
from raylm.data import shards

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_run(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    rc = main(["run", TINY, "--set", f"out={out}", "--set", "tracking.backend=mlflow",
               "--set", "tracking.tags={team: tests}"])
    assert rc == 0
    return out


def test_run_produces_shards_checkpoint_and_report(tiny_run):
    m = shards.read_manifest(tiny_run / "data" / "shards")
    assert m["vocab_size"] == 512 and m["dtype"] == "uint16"
    assert len(m["splits"]["train"]["shards"]) >= 2 and m["splits"]["val"]["documents"] > 0
    assert shards.verify(tiny_run / "data" / "shards") == []
    stats = json.loads((tiny_run / "data" / "stats.json").read_text())
    assert stats["documents_kept"] == m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"]
    result = json.loads((tiny_run / "train" / "result.json").read_text())
    assert result["metrics"]["step"] == 30 and Path(result["checkpoint"], "model.safetensors").exists()
    report = json.loads((tiny_run / "eval" / "report.json").read_text())
    assert 0 < report["lm"]["bits_per_byte"] < 8 and report["lm"]["perplexity"] < 512
    assert (tiny_run / "eval" / "report.md").exists()
    assert report["safeguard"]["enabled"] and report["safeguard"]["checked"] == 2
    assert len(report["samples"]) == 2 - report["safeguard"]["withheld"]
    assert (tiny_run / "eval" / "human" / "sheet.html").exists() and (tiny_run / "eval" / "human" / "key.json").exists()
    assert (tiny_run / "config.yaml").exists() and (tiny_run / "train" / "config.yaml").exists()
    # compute and energy: device-hours of both workers' CPUs, kWh, and how it was had
    assert result["metrics"]["device_hours"] > 0 and result["metrics"]["energy_kwh"] > 0
    assert result["metrics"]["energy_method"] in ("rated", "rapl", "nvml")
    assert report["energy"]["device_hours"] > 0 and report["energy"]["energy_method"] in ("rated", "rapl", "nvml")
    # provenance: versions, code, command, host in every result and saved config
    for rec in (result, report):
        assert rec["provenance"]["ray"] and rec["provenance"]["torch"] and rec["provenance"]["host"]
        assert "run" in rec["provenance"]["command"]
    assert (tiny_run / "train" / "config.yaml").read_text().startswith("# written by raylm ")
    assert list((tiny_run / "train" / "tb").glob("events.*"))


def test_provenance_reaches_the_shard_index(tiny_run):
    import pyarrow.parquet as pq

    idx = pq.read_table(next((tiny_run / "data" / "shards").glob("train-*.idx.parquet")))
    assert set(idx["license"].to_pylist()) == {"public-domain"}
    assert all(u.endswith("tinyshakespeare-slice.txt") for u in idx["uri"].to_pylist())


def test_rerun_skips_finished_data(tiny_run, capsys):
    def written():  # the hidden .verified.json is the checksum cache the skip path adds
        return {p.name: p.stat().st_mtime_ns for p in (tiny_run / "data" / "shards").iterdir()
                if not p.name.startswith(".")}

    before = written()
    assert main(["data", TINY, "--set", f"out={tiny_run}"]) == 0
    assert written() == before


def test_interrupted_data_run_resumes_to_identical_shards(ray_session, tiny_run, tmp_path):
    """Delete the manifest and one shard (as a kill mid-write would leave it): the rerun rewrites
    only what is missing and ends byte-identical."""
    import shutil

    out = tmp_path / "again"
    shutil.copytree(tiny_run / "data", out / "data")
    d = out / "data" / "shards"
    (d / "manifest.json").unlink()
    victim = sorted(d.glob("train-*.bin"))[0]
    victim.unlink()
    (d / (victim.stem + ".done")).unlink()
    keep = {p.name: p.stat().st_mtime_ns for p in d.glob("*.bin")}
    assert main(["data", TINY, "--set", f"out={out}"]) == 0
    for p in (tiny_run / "data" / "shards").glob("*.bin"):
        assert (d / p.name).read_bytes() == p.read_bytes()
    assert all((d / n).stat().st_mtime_ns == t for n, t in keep.items())  # finished shards not rewritten


def test_shards_do_not_depend_on_where_the_input_is(ray_session, tiny_run, tmp_path):
    """The bundled file copied elsewhere (as another checkout would have it): same split, same
    shard bytes; only the provenance path differs."""
    import shutil

    import pyarrow.parquet as pq

    copy = tmp_path / "elsewhere" / "deeper"
    copy.mkdir(parents=True)
    shutil.copy(REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt", copy)
    out = tmp_path / "out"
    assert main(["data", TINY, "--set", f"out={out}", "--set", f"data.ingest.files.paths=[{copy}]"]) == 0
    here, there = (shards.read_manifest(d / "data" / "shards") for d in (tiny_run, out))
    assert here["splits"] == there["splits"]  # documents, tokens and every shard's sha256
    idx = sorted((out / "data" / "shards").glob("*.idx.parquet"))
    for p in idx:
        mine, theirs = pq.read_table(p), pq.read_table(tiny_run / "data" / "shards" / p.name)
        assert mine["id"] == theirs["id"]
        assert all(u.startswith(str(copy)) for u in mine["uri"].to_pylist())


def test_bad_inputs_fail_fast_with_one_clear_line(ray_session, tmp_path, capsys):
    assert main(["data", TINY, "--set", f"out={tmp_path}", "--set", "data.ingest.files.paths=[/nope/x.txt]"]) == 2
    assert "/nope/x.txt does not exist" in capsys.readouterr().err
    assert main(["train", TINY, "--set", "train.optim.lrr=1"]) == 2
    assert "unknown key 'train.optim.lrr'" in capsys.readouterr().err
    assert main(["train", TINY, "--set", f"out={tmp_path}/none"]) == 2
    assert "run `raylm data` first" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n\n")
    assert main(["data", TINY, "--set", f"out={tmp_path}/e", "--set", f"data.ingest.files.paths=[{empty}]"]) == 2
    assert "Both splits need documents" in capsys.readouterr().err


def test_runs_are_tracked_in_mlflow(tiny_run):
    """tracking.backend mlflow: one run per stage in <out>/mlruns, params = the resolved config,
    the loop's metrics by step (logged from the driver), artifacts, provenance and user tags."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tiny_run / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("raylm")
    runs = {r.data.tags["raylm.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train", "eval"} and all(r.info.status == "FINISHED" for r in runs.values())
    train = runs["train"]
    assert train.data.params["train.max_steps"] == "30" and train.data.params["model.size"] == "tiny"
    assert train.data.tags["team"] == "tests" and train.data.tags["raylm.ray"]
    steps = [m.step for m in client.get_metric_history(train.info.run_id, "loss")]
    assert steps == [10, 15, 20, 30]  # every log_interval and every evaluation
    assert [m.step for m in client.get_metric_history(train.info.run_id, "val_loss")] == [15, 30]
    assert {a.path for a in client.list_artifacts(train.info.run_id)} >= {"result.json", "config.yaml"}
    assert runs["eval"].data.metrics["lm.perplexity"] > 1
    assert {a.path for a in client.list_artifacts(runs["eval"].info.run_id)} >= {"report.md", "report.json"}
