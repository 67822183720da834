"""A file's bytes as a stream: decompressed chunk by chunk (bz2, gzip, xz, zstd, by suffix),
decoded to text, split into lines. Nothing here holds more than a chunk, so a dump of any size
streams through one task (the files readers of `mediawiki` and `reddit` read this way).

Damage is an exception (`Damaged`), never a silent end. Python's bz2 and gzip readers raise
EOFError on a cut stream, but zstandard's stream_reader just ends: a 958 kB jsonl cut after half
its .zst bytes read back as 262 kB, no error (zstandard 0.25). So every codec is run here as a
decompressor object whose end-of-stream flag is checked when the file ends. Concatenated streams
(bz2 multistream dumps, gzip members, zstd frames) are read one after another.

A corrupt byte is found where the codec checks: bz2 and gzip at once or at the stream's CRC,
zstd at its block structure or at the frame checksum (written by the `zstd` command, not by
python-zstandard's default). Text decoded before the check has been handed on, so the records
just before a "corrupt" damage may hold garbled text; a cut ("truncated") loses nothing read.
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import zlib
from collections.abc import Callable, Iterator

import zstandard

from raylm import storage

CHUNK = 1 << 20  # bytes read from the file per step (compressed bytes for a compressed file)
FEED = 1 << 14   # compressed bytes handed to a decompressor at a time: what it decodes from them is
                 # lost when it raises, so the text before a corrupt byte comes out up to ~FEED before
                 # it (and up to a codec block: bz2 100-900 kB, zstd 128 kB); ~100-200 kB of text per
                 # call for bz2/zstd; a crafted high-ratio file could give far more (no bomb guard here)

_CODECS: dict[str, Callable] = {
    ".bz2": bz2.BZ2Decompressor,
    ".gz": lambda: zlib.decompressobj(wbits=31),  # 31: gzip header and trailer
    ".xz": lzma.LZMADecompressor,
    ".zst": lambda: zstandard.ZstdDecompressor().decompressobj(),
}
_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # UTF-32 LE starts
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),  # like UTF-16 LE
         (codecs.BOM_UTF8, "utf-8-sig"))
_FFFD = "\ufffd".encode()


class Damaged(OSError):
    """The stream is cut short (`reason` "truncated") or cannot be decoded ("corrupt"); an OSError,
    as a read error is."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def compression(path: str) -> str | None:
    """The compression suffix of `path` that `chunks` undoes (".bz2", ".gz", ".xz", ".zst"), or None."""
    name = storage.public_uri(path).lower()
    return next((s for s in _CODECS if name.endswith(s)), None)


def chunks(uri: str, size: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes, decompressed when its suffix says so, in pieces; raises Damaged.
    Other suffixes pyarrow knows (.lz4, .br) are undone by pyarrow, without the damage check."""
    fs, path = storage.resolve(uri)
    kind = compression(uri)
    with fs.open_input_stream(path, compression=None if kind else "detect") as f:
        raw = iter(lambda: f.read(size), b"")
        if kind is None:
            yield from raw
        else:
            yield from decompress(raw, kind)


def decompress(raw: Iterator[bytes], kind: str) -> Iterator[bytes]:
    """Compressed pieces -> decompressed pieces, for `kind` ".bz2", ".gz", ".xz" or ".zst"."""
    new = _CODECS[kind]
    d, pending, ended = new(), False, 0  # pending: the current stream took input and has not ended
    try:
        for piece in raw:
            for at in range(0, len(piece), FEED):
                buf = piece[at:at + FEED]
                while buf:
                    if ended and not pending and not buf.strip(b"\0"):  # zero padding after the last stream
                        break
                    out = d.decompress(buf)
                    pending = True
                    if out:
                        yield out
                    if d.eof:  # the stream ended inside this piece: the rest is the next stream
                        buf, d, pending, ended = d.unused_data, new(), False, ended + 1
                    else:
                        buf = b""
    except _ERRORS as e:
        raise Damaged("corrupt", f"{kind[1:]}: {e}") from None
    if pending:
        raise Damaged("truncated", f"the {kind[1:]} stream ends before its end marker")


def read_all(uri: str) -> tuple[bytes, Damaged | None]:
    """The whole (decompressed) file, or the bytes before the damage and the damage."""
    parts: list[bytes] = []
    try:
        for c in chunks(uri):
            parts.append(c)
    except Damaged as e:
        return b"".join(parts), e
    return b"".join(parts), None


def text(pieces: Iterator[bytes], counts: dict) -> Iterator[str]:
    """Bytes -> text: UTF-8 (UTF-16/32 when the stream starts with their byte-order mark; a UTF-8
    one is dropped), undecodable bytes replaced by U+FFFD and counted in counts["decode_errors"]
    (U+FFFD characters that were in the file are not counted)."""
    counts.setdefault("decode_errors", 0)
    dec, tail = None, b""
    for piece in pieces:
        if dec is None:
            enc = next((e for bom, e in _BOMS if piece.startswith(bom)), "utf-8")
            dec = codecs.getincrementaldecoder(enc)(errors="replace")
        s = dec.decode(piece)
        # a U+FFFD in the file may straddle two pieces: count in the last 2 bytes + this piece
        counts["decode_errors"] += s.count("\ufffd") - ((tail + piece).count(_FFFD) - tail.count(_FFFD))
        tail = piece[-2:]
        if s:
            yield s
    if dec is not None:
        s = dec.decode(b"", final=True)
        counts["decode_errors"] += s.count("\ufffd")
        if s:
            yield s


def lines(texts: Iterator[str]) -> Iterator[str]:
    """Text pieces -> lines, without their line end ("\\n" or "\\r\\n")."""
    rest = ""
    for t in texts:
        parts = (rest + t).split("\n")
        rest = parts.pop()
        for line in parts:
            yield line.removesuffix("\r")
    if rest:
        yield rest.removesuffix("\r")
