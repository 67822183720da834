import pyarrow as pa
import pytest

from raylm.data import schema
from raylm.data.normalise import NormaliseConfig, apply, clean_text, normalise_one


def test_mojibake_entities_controls_and_whitespace():
    cfg = NormaliseConfig()
    mojibake = "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows."
    assert clean_text(mojibake, cfg) == "The Mona Lisa doesn't have eyebrows."
    assert clean_text("fish &amp; chips", cfg) == "fish & chips"
    assert clean_text("a\x00b\x1bc\u200bd\ufeff", cfg) == "abcd"
    assert clean_text("  a \t\u00a0 b  \r\n\r\n\r\n\n c  ", cfg) == "a b\n\nc"


def test_unicode_forms():
    decomposed = "cafe\u0301"  # e + combining acute
    assert clean_text(decomposed, NormaliseConfig()) == "caf\u00e9"
    assert clean_text(decomposed, NormaliseConfig(unicode_form="none", ftfy=False)) == decomposed
    assert clean_text("\ufb01", NormaliseConfig(unicode_form="NFKC")) == "fi"
    with pytest.raises(ValueError, match="encoding"):
        NormaliseConfig(fallback_encodings=["no-such-codec"])


def test_bytes_decoding_and_rejection():
    cfg = NormaliseConfig()
    assert normalise_one("caf\u00e9".encode("utf-8"), cfg) == ("caf\u00e9", None)
    assert normalise_one("caf\u00e9".encode("cp1252"), cfg) == ("caf\u00e9", None)  # fallback
    assert normalise_one(b"\x81\x8d\x8f", cfg)[1] == "undecodable"  # undefined in cp1252 too
    assert normalise_one(b"\xff\xfe", NormaliseConfig(fallback_encodings=[]))[1] == "undecodable"
    assert normalise_one("\ufffd\ufffd ok", cfg)[1] == "undecodable"
    assert normalise_one(" \n\t ", cfg)[1] == "empty"


def test_apply_binary_column_never_crashes_and_keeps_dropped_rows():
    base = schema.make_docs([{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}])
    raw = pa.array([b"ok\x00 text", b"\x81\x8d\x8f", b"   ", b"prev"], type=pa.binary())
    t = base.set_column(1, "text", raw)
    t = schema.set_drop(t, [None, None, None, "extract:empty"])
    out = apply(t, NormaliseConfig())
    assert out["text"].type == pa.string()
    assert out["text"].to_pylist()[0] == "ok text"
    assert out["drop"].to_pylist() == [None, "normalise:undecodable", "normalise:empty", "extract:empty"]
    assert out["text"].to_pylist()[3] == "prev"
