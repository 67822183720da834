"""Charset detection and decoding shared by the WARC reader and the crawler."""

from raylm.data.ingest.charset import decode, looks_binary, parse_content_type


def test_parse_content_type():
    assert parse_content_type('Text/HTML; charset="UTF-8"') == ("text/html", "UTF-8")
    assert parse_content_type("text/plain") == ("text/plain", None)
    assert parse_content_type(None) == (None, None)
    assert parse_content_type("; charset=") == (None, None)


def test_declared_charset_wins_when_it_decodes():
    body = "Grüße".encode("cp1252")
    d = decode(body, "iso-8859-1")
    assert d.text == "Grüße" and d.charset == "cp1252" and not d.replaced


def test_meta_charset_in_html():
    body = '<html><head><meta charset="koi8-r"></head><body>Привет</body></html>'.encode("koi8_r")
    assert "Привет" in decode(body, None, html=True).text


def test_wrong_declared_charset_falls_through():
    # Declared UTF-8 but the bytes are Shift-JIS: strict UTF-8 fails, the guess finds Japanese.
    body = ("日本語のテキストです。" * 20).encode("shift_jis")
    d = decode(body, "utf-8")
    assert "日本語" in d.text and not d.replaced


def test_bom_and_unknown_label():
    assert decode("\ufeffhello".encode()).text == "hello"
    assert decode("hello".encode("utf-16")).text == "hello"
    assert decode(b"plain ascii", "no-such-charset").text == "plain ascii"


def test_invalid_bytes_never_raise():
    body = b"caf\xc3 \xff\xfe\x80 ok"
    d = decode(body, "utf-8")
    assert isinstance(d.text, str) and "ok" in d.text


def test_looks_binary():
    assert looks_binary(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert looks_binary(bytes(range(1, 32)) * 10)
    assert not looks_binary(b"<html>\n\t<body>text</body></html>")
    assert not looks_binary("hello".encode("utf-16"))
    assert not looks_binary(b"")
