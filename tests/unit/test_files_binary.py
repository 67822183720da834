"""Binary or mostly non-text files and documents are dropped as `ingest:binary`; real text never is.

The thresholds (raylm/data/ingest/files.py) are checked on every real text file in
../shared/data, the SPDX license texts, the repo's own text, and on real binaries.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from raylm.data.ingest import files
from raylm.data.ingest.files import FilesConfig, non_text_share, parse_file

REPO = Path(__file__).resolve().parents[2]
UNITS = ("file", "paragraph", "line")


def _drops(data: bytes, name: str = "x.txt", **cfg) -> list[str | None]:
    table, _ = parse_file(name, data, FilesConfig(**cfg))
    return table["drop"].to_pylist()


def _png(w: int = 32, h: int = 32) -> bytes:
    raw = b"".join(b"\x00" + bytes((x * 7 + y * 13) % 256 for x in range(w * 3)) for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _real_texts(shared: Path) -> dict[str, bytes]:
    out = {str(p): p.read_bytes() for p in [
        *shared.glob("tinyshakespeare/*.txt"), *shared.glob("sst2/*"), *shared.glob("agnews/*"),
        *shared.glob("pii/*"), *shared.glob("neardup/*.tsv"), shared / "README.md",
        *(REPO / "raylm" / "assets").iterdir(), *(REPO / "raylm" / "data" / "lists").iterdir(),
        *(REPO / "docs").glob("*.md"), *(REPO / "configs").glob("*.yaml")] if p.is_file()}
    with tarfile.open(shared / "neardup" / "spdx-license-list-6.12.0.tgz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("package/licenses/"):
                out[m.name] = json.loads(tar.extractfile(m).read())["licenseText"].encode()
    return out


def test_no_real_text_is_dropped(shared_data):
    texts = _real_texts(shared_data)
    assert len(texts) > 700
    for name, data in texts.items():
        assert non_text_share(data.decode("utf-8", errors="replace")) == 0.0, name
        for unit in UNITS:
            assert "ingest:binary" not in _drops(data, txt_unit=unit), (name, unit)


def _binaries() -> dict[str, bytes]:
    text = (REPO / "raylm" / "assets" / "tinyshakespeare-slice.txt").read_bytes()
    npy = io.BytesIO()
    np.save(npy, np.arange(5000, dtype=np.int64))
    return {"gzip": gzip.compress(text, mtime=0), "png": _png(), "npy": npy.getvalue(),
            "uint16 tokens": np.arange(20000, dtype="<u2").tobytes(),
            "executable": Path(sys.executable).resolve().read_bytes()[:200_000]}


def _dropped_whole(name: str, data: bytes) -> None:
    for unit in UNITS:
        table, counts = parse_file(f"{name}.txt", data, FilesConfig(txt_unit=unit))
        assert table["drop"].to_pylist() == ["ingest:binary"], (name, unit)
        assert table["text"].to_pylist() == [""] and counts["skipped_binary"] == 1
    assert _drops(data, "blob.jsonl") == ["ingest:binary"], name  # one row, not a bad_record per line


def test_real_binaries_are_dropped_whole_and_counted():
    for name, data in _binaries().items():
        _dropped_whole(name, data)


def test_gzipped_warcs_read_as_text_are_dropped(shared_data):
    found = sorted(shared_data.glob("warc/*.gz"))
    assert found
    for p in found:
        _dropped_whole(p.name, p.read_bytes())


def test_rule_without_nul_share_of_non_text():
    text = "plain words and more words " * 10
    assert _drops(text.encode(), txt_unit="file") == [None]
    noisy = "".join(c + ("\x01" if i % 4 == 0 else "") for i, c in enumerate(text))  # 20% control
    assert non_text_share(noisy) == pytest.approx(0.2, abs=0.01)
    assert _drops(("".join(c + ("\x01" if i % 3 == 0 else "") for i, c in enumerate(text))).encode(),
                  txt_unit="file") == ["ingest:binary"]   # 25%
    assert _drops("\t\n\r\x0c".join([text] * 3).encode(), txt_unit="file") == [None]  # tab, LF, CR, FF are text


def test_legacy_8bit_latin_text_passes_and_utf16_is_decoded():
    french = ("Le cœur a ses raisons que la raison ne connaît point. Déjà vu, café crème, "
              "à la française: l'été dernier, près de la forêt. ") * 20
    latin1 = french.replace("œ", "oe").encode("latin-1")   # read as UTF-8: ~5% U+FFFD
    assert 0.02 < non_text_share(latin1.decode("utf-8", errors="replace")) < 0.1
    for unit in UNITS:
        assert "ingest:binary" not in _drops(latin1, txt_unit=unit)
    for codec in ("utf-16", "utf-16-be", "utf-32"):
        data = (b"\xfe\xff" + french.encode(codec)) if codec == "utf-16-be" else french.encode(codec)
        table, counts = parse_file("f.txt", data, FilesConfig(txt_unit="file"))
        assert table["drop"].to_pylist() == [None] and table["text"].to_pylist() == [french.strip("\n")], codec
        assert counts["decode_errors"] == 0


def test_documents_of_a_text_file_judged_one_by_one():
    blob = bytes(1 + (i * 37 + 11) % 31 for i in range(600)).replace(b"\n", b"")  # C0 controls, no NUL
    body = ("A paragraph of honest prose, long enough to be judged on its own merits.\n\n"
            * 50).encode() + blob + b"\n\nA last honest paragraph.\n\n\x1b[1mshort\x1b[0m\n"
    assert non_text_share(body.decode()) < files.BINARY_SHARE  # the file as a whole passes
    drops = _drops(body, txt_unit="paragraph")
    assert drops.count("ingest:binary") == 1 and drops.count(None) == 52  # the short control-laden one too
    record = json.dumps({"text": "\x07" * 100}) + "\n" + json.dumps({"text": "fine text " * 10}) + "\n"
    assert _drops(record.encode() * 5, "r.jsonl") == ["ingest:binary", None] * 5


def test_read_one_drops_a_binary_file_on_disk(tmp_path):
    p = tmp_path / "image.txt"
    p.write_bytes(_png())
    table, counts = files.read_one(str(p), FilesConfig())
    assert table["drop"].to_pylist() == ["ingest:binary"] and counts["skipped_binary"] == 1
