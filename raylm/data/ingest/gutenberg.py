"""Project Gutenberg plain-text books: the licence header and footer are cut, the book is kept.

The book is what lies between the header's last line and the footer's first:

- header: up to the "*** START OF THE (or THIS) PROJECT GUTENBERG EBOOK ... ***" line (books
  since ~2006), or the "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*...*END*" line (1990s
  etexts); a "Produced by ..." credit paragraph right after it goes too;
- footer: from the "*** END OF THE (or THIS) PROJECT GUTENBERG EBOOK ... ***" line, or from an
  "End of (the) Project Gutenberg ..." line just before it; texts without the *** line end at
  their first "End of (the) Project Gutenberg" line.

With data.ingest.files.format auto, a .txt file is read as a Gutenberg book when `is_book`: a
start marker in its first HEAD characters. A file read as gutenberg with no start marker is kept
whole (it may be a text from elsewhere) and `strip` says so, for the caller to count. The book's
number, from "[EBook #11]" in the header or a file name like pg11.txt / 11-0.txt, gives its URL.
"""

from __future__ import annotations

import re

HEAD = 65536  # characters searched for a start marker by `is_book` (headers are 1-20 kB)
LICENSE = "Project Gutenberg License"  # public domain in the USA; the licence governs the PG trademark
_START = re.compile(r"^[ \t]*\*{3}[ \t]*START OF (?:THE|THIS) PROJECT GUTENBERG.*$"
                    r"|^[ \t]*\*{3}[ \t]*START OF THE COPYRIGHTED PROJECT GUTENBERG.*$"
                    r"|^[ \t]*\*END\*?[ \t]*THE SMALL PRINT.*$", re.M | re.I)
_END = re.compile(r"^[ \t]*\*{3}[ \t]*END OF (?:THE|THIS) PROJECT GUTENBERG.*$"
                  r"|^[ \t]*\*{3}[ \t]*END OF THE COPYRIGHTED PROJECT GUTENBERG.*$", re.M | re.I)
_END_LINE = re.compile(r"^[ \t]*End of (?:the |this )?Project Gutenberg.*$", re.M | re.I)
_CREDIT = re.compile(r"(?:Produced by|E-?text prepared by|This e-?text was (?:prepared|produced) by)\b", re.I)
_NUMBER = re.compile(r"\[\s*E-?(?:Book|Text)\s*#\s*(\d+)\s*\]", re.I)
_FILE_NUMBER = re.compile(r"(?:pg)?(\d+)(?:-\d+)?(?:\.txt)?", re.I)


def is_book(head: str) -> bool:
    """Whether a text's start (HEAD characters) holds a Project Gutenberg start marker."""
    return _START.search(head[:HEAD]) is not None


def strip(text: str, file_name: str = "") -> tuple[str, dict]:
    """A Gutenberg file's text -> (the book, {"marked": a start marker was found, "number": the
    book number or None}). Line ends become "\\n"."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    start_m = _START.search(text)
    start = start_m.end() if start_m else 0
    end_m = _END.search(text, start)
    if end_m:
        end = end_m.start()
        lines = list(_END_LINE.finditer(text, start, end))
        last = lines[-1] if lines else None
        if last and not text[last.end():end].strip():  # "End of Project Gutenberg's X" just above
            end = last.start()
    else:
        line = _END_LINE.search(text, start)
        end = line.start() if line else len(text)
    book = text[start:end].strip("\n")
    head, sep, rest = book.lstrip().partition("\n\n")
    if sep and _CREDIT.match(head):  # "Produced by <names> and the Online Distributed Proofreading Team"
        book = rest
    number = _NUMBER.search(text, 0, start) if start_m else None
    if number is None:
        number = _FILE_NUMBER.fullmatch(file_name.rsplit("/", 1)[-1])
    return book.strip("\n"), {"marked": start_m is not None, "number": int(number.group(1)) if number else None}


def url(number: int | None) -> str | None:
    return f"https://www.gutenberg.org/ebooks/{number}" if number else None
