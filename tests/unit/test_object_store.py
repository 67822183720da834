"""Files and WARC ingest from an object store: a moto S3 server on 127.0.0.1, reached through
pyarrow's S3 file system (AWS_ENDPOINT_URL), exactly as `s3://` paths in a config are read.
No Ray: the listing and per-file readers are what each Ray task runs."""

from __future__ import annotations


import objstore_checks  # tests/unit/objstore_checks.py: the checks the gs:// twin runs too
import pytest

pytest.importorskip("moto")

from moto_s3 import moto_s3  # noqa: E402 -- tests/moto_s3.py, after the skip
pytestmark = pytest.mark.network  # a local S3 server on 127.0.0.1

BUCKET = "raylm-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with moto_s3(BUCKET, mp) as client:
        yield client
    mp.undo()


def _put(s3):
    return lambda key, body: s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def test_jsonl_glob_from_s3_keeps_ids_uris_and_licenses(s3):
    objstore_checks.jsonl_glob_keeps_ids_uris_and_licenses(_put(s3), f"s3://{BUCKET}")


def test_warc_from_s3_reads_the_same_records_as_from_disk(s3, shared_data):
    objstore_checks.warc_reads_the_same_records_as_from_disk(
        _put(s3), f"s3://{BUCKET}", shared_data / "warc" / "IAH-20080430204825-00000-blackbook.warc.gz")


def test_checkpoint_on_s3_is_fetched_once_and_loads(s3, tmp_path):
    """A checkpoint Ray Train stored on S3 (cluster.storage_path = s3://...) is named by its URI
    in result.json; eval and fine-tuning copy it under out once and load the same weights."""
    import pyarrow.fs as pafs
    import torch
    from ray.train import Checkpoint

    from raylm.model.gpt import GPT, GPTConfig
    from raylm.train import checkpoint as ckpt

    cfg = GPTConfig(vocab_size=40, n_layer=1, n_head=2, n_embd=16, block_size=8)
    model = GPT(cfg)
    local = ckpt.save(tmp_path / "step-4", model, cfg, state={"step": 4})
    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}/")
    pafs.copy_files(str(local), f"{BUCKET}/runs/step-4", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    uri = ckpt.uri_of(Checkpoint(f"{BUCKET}/runs/step-4", filesystem=fs))
    assert uri == f"s3://{BUCKET}/runs/step-4"
    assert ckpt.uri_of(Checkpoint(str(local))) == str(local)  # local paths stay paths

    got = ckpt.fetch(uri, tmp_path / "cache")
    assert type(tmp_path)(got).is_relative_to(tmp_path / "cache")
    loaded = ckpt.load_model(got)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    assert ckpt.load_state(got)["step"] == 4
    s3.delete_object(Bucket=BUCKET, Key="runs/step-4/model.json")  # cached: not downloaded again
    assert ckpt.fetch(uri, tmp_path / "cache") == got
    assert ckpt.fetch(str(local), tmp_path / "cache") == str(local)
    with pytest.raises(FileNotFoundError, match="not found"):
        ckpt.fetch(f"s3://{BUCKET}/runs/missing", tmp_path / "cache")


def test_uri_options_and_spaced_keys_reach_the_reader(s3, monkeypatch):
    """An entry's query options (here the endpoint, in place of AWS_ENDPOINT_URL) travel with each
    file it expands to, and a key with a space is percent-encoded in the URI and read back; its
    location-free name (the documents' ids) is the plain key, as for a local copy."""
    from raylm.data.ingest.files import FilesConfig, expand, read_one

    endpoint = s3.meta.endpoint_url.split("://", 1)[1]
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    s3.put_object(Bucket=BUCKET, Key="spaced/my notes.jsonl", Body=b'{"text": "a document with a spaced key"}\n')
    opts = f"?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    [(uri, name)] = expand([f"s3://{BUCKET}/spaced/*.jsonl{opts}"])
    assert (uri, name) == (f"s3://{BUCKET}/spaced/my%20notes.jsonl{opts}", "my notes.jsonl")
    table, _ = read_one(uri, FilesConfig(paths=[uri]), name=name)
    assert table.column("text").to_pylist() == ["a document with a spaced key"]
    assert table.column("uri").to_pylist() == [f"s3://{BUCKET}/spaced/my%20notes.jsonl"]  # provenance: no options
    other = f"?region=us-east-1&endpoint_override={endpoint}&scheme=http"  # another spelling, maybe another store
    with pytest.raises(ValueError, match="same path with different store options"):
        expand([f"s3://{BUCKET}/spaced/*.jsonl{opts}", f"s3://{BUCKET}/spaced/*.jsonl{other}"])


def test_unauthorised_bucket_is_one_line_naming_the_key(s3, monkeypatch, tmp_path):
    """With moto's authentication on, the test keys are refused (403), as foreign or missing
    credentials are: listing inputs, writing `out` and reading a data folder each fail with one
    line naming the config key and saying access was denied."""
    import moto.settings
    from types import SimpleNamespace

    from raylm import commands, config as C
    from raylm.data.pipeline import check_inputs
    from raylm.root import RootConfig

    _put(s3)("denied/a.txt", b"some text")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    cfg = C.load(RootConfig, None, [f"data.ingest.files.paths=[s3://{BUCKET}/denied/*.txt]",
                                    f"out=s3://{BUCKET}/runs/denied"])
    with pytest.raises(ValueError, match=rf"^data.ingest.files.paths: s3://{BUCKET}/denied/\*.txt: cannot read it: "
                                         r"access denied; the credentials this process uses \(AWS_\*"):
        check_inputs(cfg.data, str(tmp_path))
    with pytest.raises(ValueError, match=rf"^out: s3://{BUCKET}/runs/denied: cannot write there: access denied"):
        commands._hold(SimpleNamespace(command="data"), cfg)
    with pytest.raises(ValueError, match=rf"^data folder .*: s3://{BUCKET}/runs/denied/data: cannot read it: "
                                         r"access denied"):
        commands._shards_ready(cfg.model, f"s3://{BUCKET}/runs/denied/data")


def test_out_on_s3_is_locked_by_a_lease(s3, monkeypatch):
    """Two runs into one s3:// out: the second is refused while the first's lease is renewed;
    a lease silent for LEASE_S (a killed run) is taken over; release removes ours only."""
    import json as _json

    from raylm import outputs, storage

    monkeypatch.setattr(outputs, "SETTLE_S", 0.05)
    out = f"s3://{BUCKET}/runs/locked"
    try:
        outputs.lock(out, "data")
        outputs.lock(out, "train")  # the same process (raylm run): re-entrant
        mine = _json.loads(storage.read_text(f"{out}/.lock"))
        assert "raylm data" in mine["holder"]
        outputs._leases.clear()  # now this process is "another run" to the lease on the store
        with pytest.raises(FileExistsError, match=r"runs/locked is in use by another raylm run \(pid .*raylm data, "
                                                  r"renewed \d+s ago\)"):
            outputs.lock(out, "train")
        stale = {**mine, "renewed": mine["renewed"] - outputs.LEASE_S - 1}
        _put(s3)("runs/locked/.lock", _json.dumps(stale).encode())
        outputs.lock(out, "train")  # a dead run's lease: taken over
        assert "raylm train" in _json.loads(storage.read_text(f"{out}/.lock"))["holder"]
    finally:
        outputs.release_locks()
    assert not storage.exists(f"{out}/.lock")
