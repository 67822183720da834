import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raylm.data import shards
from raylm.data.ingest.files import FilesConfig, expand, expand_paths, parse_file, read_one
from raylm.data.pipeline import blank_dropped
from raylm.data.schema import file_names, make_docs
from raylm.data.split import assign_split
from raylm.data.tokenize import EOS, Encoder, TokenizerConfig, char_tokenizer, train_bpe


def test_txt_paragraphs_have_stable_ids_and_provenance():
    cfg = FilesConfig(license="CC0")
    t1, _counts = parse_file("/x/a.txt", b"one para\n\nsecond\n\n \n\nthird", cfg, "2026-01-01T00:00:00+00:00")
    t2, _ = parse_file("/x/a.txt", b"one para\n\nsecond\n\n \n\nthird", cfg)
    kept = t1.filter(pa.compute.is_null(t1["drop"]))
    assert kept["text"].to_pylist() == ["one para", "second", "third"]
    assert t1["id"].to_pylist() == t2["id"].to_pylist()
    assert set(kept["license"].to_pylist()) == {"CC0"} and set(kept["source"].to_pylist()) == {"file"}
    assert t1.filter(pa.compute.is_valid(t1["drop"]))["drop"].to_pylist() == ["ingest:too_short"]


def test_jsonl_bad_records_are_counted_not_fatal():
    data = b'{"text": "good one", "url": "http://a"}\nnot json\n{"other": 1}\n{"text": "two"}\n'
    t, counts = parse_file("f.jsonl", data, FilesConfig(url_field="url"))
    assert t.filter(pa.compute.is_null(t["drop"]))["text"].to_pylist() == ["good one", "two"]
    assert counts["skipped_bad_record"] == 2
    assert t["url"].to_pylist()[0] == "http://a"


def test_parquet_and_missing_column(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"body": ["alpha", "beta"]}), p)
    with pytest.raises(ValueError, match="no column 'text'"):
        read_one(str(p), FilesConfig())
    t, _ = read_one(str(p), FilesConfig(text_field="body"))
    assert t["text"].to_pylist() == ["alpha", "beta"]


def test_invalid_utf8_is_replaced_and_counted():
    t, counts = parse_file("b.txt", b"caf\xe9 ok", FilesConfig(txt_unit="file"))
    assert counts["decode_errors"] == 1 and t["text"][0].as_py() == "caf\ufffd ok"


def test_expand_paths_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand_paths([str(tmp_path / "nope.txt")])
    with pytest.raises(FileNotFoundError, match="matches no files"):
        expand_paths([str(tmp_path / "*.jsonl")])
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    assert [p.rsplit("/", 1)[1] for p in expand_paths([str(tmp_path / "*.txt")])] == ["a.txt", "b.txt"]


def test_expand_paths_home_andfile_uris_give_plain_paths(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jsonl").write_text("{}")
    (tmp_path / "d" / "notes.bin").write_text("x")  # a directory entry takes data files only
    monkeypatch.setenv("HOME", str(tmp_path))
    want = [(str(tmp_path / "d" / "a.jsonl"), "a.jsonl")]
    assert expand(["~/d"]) == expand(["file://" + str(tmp_path / "d")]) == expand([str(tmp_path / "d/*.jsonl")]) == want
    # A file named by two entries is read once, under the first entry's name.
    assert expand([str(tmp_path / "d"), str(tmp_path)]) == want


def test_glob_star_stays_in_its_directory_and_double_star_crosses(tmp_path):
    for rel in ("d/x.jsonl", "d/sub/y.jsonl", "d/sub/deeper/z.jsonl", "d/sub/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")

    def names(pattern):
        return [n for _, n in expand([str(tmp_path / pattern)])]

    assert names("d/*.jsonl") == ["x.jsonl"]
    assert names("d/*/*.jsonl") == ["sub/y.jsonl"]  # names start below the glob's fixed part
    assert names("d/**/*.jsonl") == ["sub/deeper/z.jsonl", "sub/y.jsonl", "x.jsonl"]
    assert names("d/**.jsonl") == names("d/**/*.jsonl")
    assert names("d/s?b/[!n]*") == ["sub/y.jsonl"]
    with pytest.raises(FileNotFoundError, match="matches no files"):
        expand([str(tmp_path / "d/?.jsonl/*")])


def test_object_store_uris_keep_what_the_entry_spelled():
    """Each file's URI is the entry's own text above the listed base (credentials, host, bucket),
    the file below it percent-encoded, and the entry's query options; provenance drops options
    and credentials."""
    from raylm.data.ingest.objstore import file_uri, glob_regex
    from raylm.storage import public_uri

    opts = "?region=us-east-1&endpoint_override=127.0.0.1:9000&scheme=http"
    assert file_uri(f"s3://b/in/*.jsonl{opts}", "b/in/*.jsonl", "b/in", "b/in/a b%.jsonl") == \
        f"s3://b/in/a%20b%25.jsonl{opts}"
    creds = file_uri("s3://AK:SK@b/d/*.jsonl?region=r", "b/d/*.jsonl", "b/d", "b/d/x.jsonl")
    assert creds == "s3://AK:SK@b/d/x.jsonl?region=r" and public_uri(creds) == "s3://b/d/x.jsonl"
    assert file_uri("hdfs://nn:8020/in/*.txt", "/in/*.txt", "/in", "/in/s/x.txt") == "hdfs://nn:8020/in/s/x.txt"
    assert file_uri("hdfs:///user/x/*.txt", "/user/x/*.txt", "/user/x", "/user/x/a.txt") == "hdfs:///user/x/a.txt"
    assert file_uri("s3://b", "b", "b", "b/k/x.jsonl") == "s3://b/k/x.jsonl"
    assert file_uri("s3://b/my%20dir/", "b/my dir", "b/my dir", "b/my dir/x y.jsonl") == "s3://b/my%20dir/x%20y.jsonl"
    assert file_uri("gs://b/d/x.jsonl", "b/d/x.jsonl", "b/d", "b/d/x.jsonl") == "gs://b/d/x.jsonl"
    assert file_uri("file:///in", "/in", "/in", "/in/x.txt") == "/in/x.txt"
    assert file_uri("/in", "/in", "/in", "/in/x.txt") == "/in/x.txt"
    assert public_uri("abfs://box@acct.dfs.core.windows.net/x?k=v") == "abfs://box@acct.dfs.core.windows.net/x"
    assert glob_regex("d/[]a].txt").match("d/].txt") and not glob_regex("d/[!]a].txt").match("d/].txt")
    assert not glob_regex("d/[!a]x").match("d//x") and glob_regex("d/a[").match("d/a[")
    assert glob_regex("d/[a&&b]x").match("d/&x")  # set-operation look-alikes are literal, no warning
    with pytest.raises(ValueError, match="files.paths: .*bad glob"):
        expand(["/tmp/[z-a]*.jsonl"])


def test_file_names_are_relative_to_the_entry_and_unique():
    assert file_names([("/a/x", "/a/x/t.tsv"), ("/c/d", "/c/d/e/f.jsonl"), ("/c/d", "/c/d/g.jsonl")]) == {
        "/a/x/t.tsv": "t.tsv", "/c/d/e/f.jsonl": "e/f.jsonl", "/c/d/g.jsonl": "g.jsonl"}
    # Two files that would share a name take parent directories until they differ.
    assert file_names([("/a", "/a/data.jsonl"), ("/b/c", "/b/c/data.jsonl"), ("/r", "/r/q/data.jsonl")]) == {
        "/a/data.jsonl": "a/data.jsonl", "/b/c/data.jsonl": "c/data.jsonl", "/r/q/data.jsonl": "q/data.jsonl"}
    # The scheme is not part of a name; the same bare path twice keeps full URIs (ids never clash).
    assert file_names([("gs://bk/corp", "gs://bk/corp/sub/a.jsonl")]) == {"gs://bk/corp/sub/a.jsonl": "sub/a.jsonl"}
    assert file_names([("s3://b/x", "s3://b/x/q.txt"), ("/b/x", "/b/x/q.txt")]) == {
        "s3://b/x/q.txt": "s3://b/x/q.txt", "/b/x/q.txt": "/b/x/q.txt"}


def test_ids_do_not_depend_on_where_the_corpus_is(tmp_path):
    """The same files under two directories, named as a file, a directory and a glob entry:
    the same ids, so the same split and shards (the path stays in `uri` as provenance)."""
    for where in ("one/corpus", "two/deeper/corpus"):
        (tmp_path / where / "sub").mkdir(parents=True)
        (tmp_path / where / "a.txt").write_text("alpha\n\nbeta")
        (tmp_path / where / "sub" / "b.jsonl").write_text('{"text": "gamma"}\n')

    def ids(entries):
        return [(n, d["id"]) for u, n in expand(entries) for d in read_one(u, FilesConfig(), n)[0].to_pylist()]

    for root in ("one/corpus", "two/deeper/corpus"):
        assert ids([str(tmp_path / root)]) == ids([str(tmp_path / "one/corpus")])
        assert ids([str(tmp_path / root / "*.txt"), str(tmp_path / root / "sub/b.jsonl")]) == ids(
            [str(tmp_path / "one/corpus/a.txt"), str(tmp_path / "one/corpus/sub/*.jsonl")])
    assert [n for n, _ in ids([str(tmp_path / "one/corpus")])] == ["a.txt", "a.txt", "sub/b.jsonl"]
    # Listed twice, a file is read once; two entries' same-named files get distinct ids.
    assert len(expand([str(tmp_path / "one/corpus/a.txt"), str(tmp_path / "one/corpus/*.txt")])) == 1
    both = ids([str(tmp_path / "one/corpus/a.txt"), str(tmp_path / "two/deeper/corpus/a.txt")])
    assert [n for n, _ in both] == ["one/corpus/a.txt"] * 2 + ["deeper/corpus/a.txt"] * 2
    assert len({i for _, i in both}) == 4


def test_split_is_deterministic_and_by_document():
    t = pa.table({"id": [f"d{i}" for i in range(2000)]})
    a = assign_split(t, 0.1, 7)["split"].to_pylist()
    assert a == assign_split(t, 0.1, 7)["split"].to_pylist()
    assert 120 < a.count("val") < 280
    assert a != assign_split(t, 0.1, 8)["split"].to_pylist()


def test_dropped_rows_lose_their_text_but_keep_their_counts():
    t = make_docs([{"id": "a", "text": "kept"}, {"id": "b", "text": "x" * 99, "drop": "quality:short"}])
    t = t.append_column("_bytes_quality", pa.array([4, 0], pa.int64()))
    out = blank_dropped(t)
    assert out["text"].to_pylist() == ["kept", None] and out.schema == t.schema
    assert out.drop_columns(["text"]) == t.drop_columns(["text"])
    assert out["text"].nbytes < 20  # the dropped text's bytes are gone, not only masked


def test_char_tokenizer_round_trip_and_unknown():
    tok = char_tokenizer("abc \n")
    ids = tok.encode("ab c\nca", add_special_tokens=False).ids
    assert len(ids) == 7 and tok.decode(ids) == "ab c\nca"
    assert tok.encode("z", add_special_tokens=False).ids == [tok.token_to_id("<unk>")]
    assert tok.token_to_id(EOS) == tok.get_vocab_size() - 1


def test_bpe_vocab_and_unreachable_vocab():
    texts = ["the quick brown fox jumps over the lazy dog " * 20] * 10
    tok = train_bpe(texts, TokenizerConfig(vocab_size=270))
    assert tok.get_vocab_size() == 270
    assert tok.decode(tok.encode("the lazy fox").ids) == "the lazy fox"
    with pytest.raises(ValueError, match="cannot be reached"):
        train_bpe(texts, TokenizerConfig(vocab_size=5000))
    with pytest.raises(ValueError, match="at least 257"):
        TokenizerConfig(vocab_size=100)


def test_shard_write_is_deterministic_retry_safe_and_checksummed(tmp_path):
    tok = char_tokenizer("abcdef ")
    docs = pa.table({"id": ["z", "a", "m"], "text": ["abc", "de f", "fed"], "source": ["file"] * 3})
    enc = Encoder(tok.to_str(), keep=("id", "source"))(docs)
    enc = enc.append_column("shard", pa.array(["train-00000"] * 3))
    meta1 = shards.write_shard(enc, str(tmp_path), "uint16").to_pylist()[0]
    blob = (tmp_path / "train-00000.bin").read_bytes()
    meta2 = shards.write_shard(enc.take([2, 0, 1]), str(tmp_path), "uint16").to_pylist()[0]  # retry, other order
    assert meta1 == meta2 and (tmp_path / "train-00000.bin").read_bytes() == blob
    arr = np.frombuffer(blob, dtype="<u2")
    eos = tok.token_to_id(EOS)
    assert arr.tolist().count(eos) == 3 and meta1["tokens"] == 3 + 4 + 3 + 3
    assert tok.decode(arr[:4].tolist(), skip_special_tokens=True) == "de f"  # id "a" sorts first
    idx = pq.read_table(tmp_path / "train-00000.idx.parquet")
    assert idx["id"].to_pylist() == ["a", "m", "z"] and idx["offset"].to_pylist() == [0, 5, 9]
    shards.write_manifest(tmp_path, [meta1], dtype="uint16", vocab_size=tok.get_vocab_size(), eos_id=eos,
                          tokenizer="tokenizer.json")
    assert shards.verify(tmp_path) == []
    (tmp_path / "train-00000.bin").write_bytes(blob[:-2])
    assert shards.verify(tmp_path) == ["train-00000"]
    assert json.loads((tmp_path / "manifest.json").read_text())["splits"]["train"]["documents"] == 3


def test_data_label_selector_is_placement_only():
    """data.label_selector reaches Ray Data's execution options for the run only, and does not
    change the output fingerprint (the same shards wherever they are made)."""
    from ray.data import DataContext

    from raylm.data.config import DataConfig, fingerprint
    from raylm.data.pipeline import placement

    pinned = DataConfig(label_selector={"raylm-role": "data"})
    assert fingerprint(pinned, 1) == fingerprint(DataConfig(), 1)
    opts = DataContext.get_current().execution_options
    before = opts.label_selector
    with placement(pinned.label_selector):
        assert opts.label_selector == {**(before or {}), "raylm-role": "data"}
    assert opts.label_selector == before
    with placement({}):
        assert opts.label_selector == before
