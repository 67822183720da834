"""Heuristic quality filters: Gopher (quality + repetition), C4 and FineWeb.

The rules and their default thresholds are those of datatrove 0.10 (GopherQualityFilter,
GopherRepetitionFilter, C4QualityFilter, FineWebQualityFilter), which follow Rae et al. 2021
(Gopher, table A1), Raffel et al. 2020 (C4) and Penedo et al. 2024 (FineWeb);
tests/unit/test_quality_parity.py runs both on the texts raylm extracts from the shared WARCs and
holds every rule to >= 99% agreement. A rejected row gets `drop = "quality:<rule>"`, e.g.
"quality:gopher_short_doc"; the first failing rule wins, in the order gopher, gopher_rep, c4,
fineweb. C4 is also a line filter: with `c4.edit_lines` (the published behaviour) its removed
lines (no terminal punctuation, < 3 words, "javascript", cookie/policy notices) are deleted from
`text` of kept rows.

Words are datatrove's: spaCy's English tokenizer, under which punctuation, "n't" and "'s" are
words of their own, so in a nav bar "Home | News | About" 3 words of 5 are alphabetic, not 3 of 3.
`split_words` emulates that split with one regex (spaCy itself would make this stage about 5x
slower); on the WARC texts about 2 words in 1,000 differ from spaCy's (rarer special cases
such as "cannot" -> "can not", "Ph.D."). One deliberate difference: a page with "{" or "lorem
ipsum" anywhere is dropped, as the C4 paper states; datatrove (like C4's code) looks only at lines
that survive the line rules, so it keeps a page whose only "{" is in a script line C4 removes.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from raylm.data import schema


@dataclass
class GopherRepetitionConfig:
    enabled: bool = True  # run the Gopher repetition rules
    dup_line_frac: float = 0.3  # max fraction of lines that are duplicates
    dup_para_frac: float = 0.3  # max fraction of paragraphs that are duplicates
    dup_line_char_frac: float = 0.2  # max fraction of chars in duplicate lines
    dup_para_char_frac: float = 0.2  # max fraction of chars in duplicate paragraphs
    # n -> max fraction of chars covered by the most common n-gram
    top_ngram_max_frac: dict[str, float] = field(default_factory=lambda: {"2": 0.2, "3": 0.18, "4": 0.16})
    dup_ngram_max_frac: dict[str, float] = field(default_factory=lambda: {
        "5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10})  # n -> max char frac in repeated n-grams

    def __post_init__(self):
        for k in (*self.top_ngram_max_frac, *self.dup_ngram_max_frac):
            if not k.isdigit() or int(k) < 1:
                raise ValueError(f"quality.gopher_rep n-gram keys must be positive integers, got {k!r}")


@dataclass
class GopherQualityConfig:
    enabled: bool = True  # run the Gopher quality rules
    min_doc_words: int = 50  # words, not counting punctuation
    max_doc_words: int = 100_000  # words, not counting punctuation
    min_avg_word_length: float = 3.0  # chars, over words that are not punctuation
    max_avg_word_length: float = 10.0  # chars
    max_symbol_word_ratio: float = 0.1  # max '#' count / words, and max ellipsis count / words
    max_bullet_lines_ratio: float = 0.9  # lines starting with "•" or "-" / lines
    max_ellipsis_lines_ratio: float = 0.3  # lines ending with an ellipsis / lines
    min_alpha_words_ratio: float = 0.8  # words with at least one letter / words (punctuation included)
    min_stop_words: int = 2  # distinct words of stop_words that must occur (case-sensitive)
    stop_words: list[str] = field(default_factory=lambda: [
        "the", "be", "to", "of", "and", "that", "have", "with"])  # Gopher's English stop words

    def __post_init__(self):
        if self.min_doc_words > self.max_doc_words or self.min_avg_word_length > self.max_avg_word_length:
            raise ValueError("quality.gopher: min_* must be <= max_*")


@dataclass
class C4Config:
    enabled: bool = True  # run the C4 rules
    edit_lines: bool = True  # delete the lines C4 rejects from kept documents (C4's own behaviour)
    min_words_per_line: int = 3  # lines with fewer (whitespace) words are removed
    max_word_length: int = 1000  # chars; lines with a longer word are removed
    min_num_sentences: int = 5  # in the kept lines; fewer -> drop
    filter_lorem_ipsum: bool = True  # "lorem ipsum" anywhere -> drop
    filter_curly_bracket: bool = True  # "{" anywhere -> drop (C4 removes code this way)
    filter_javascript: bool = True  # lines mentioning javascript are removed
    filter_policy: bool = True  # cookie / terms-of-use lines are removed
    filter_no_terminal_punct: bool = True  # lines not ending in . ? ! " ' (or ending in ...) are removed


@dataclass
class FineWebConfig:
    enabled: bool = True  # run the FineWeb rules
    line_punct_thr: float = 0.12  # min fraction of lines ending in terminal punctuation (_TERMINAL)
    short_line_thr: float = 0.67  # max fraction of lines with <= short_line_length chars
    short_line_length: int = 30  # chars
    char_duplicates_ratio: float = 0.01  # max fraction of chars in duplicate lines
    new_line_ratio: float = 0.3  # max newlines / words (list-like pages)


@dataclass
class QualityConfig:
    gopher_rep: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)  # Gopher repetition rules
    gopher: GopherQualityConfig = field(default_factory=GopherQualityConfig)  # Gopher quality rules
    c4: C4Config = field(default_factory=C4Config)  # C4 rules
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)  # FineWeb rules


# --- words and characters, as datatrove 0.10 defines them --------------------------------

# datatrove.utils.text.TERMINAL_PUNCTUATION (Unicode sentence terminals): FineWeb's line ends.
_TERMINAL = tuple(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965\u104a"
    "\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944\u1945\u1aa8"
    "\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c\u203d\u2047\u2048"
    "\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877\ua8ce\ua8cf\ua92f\ua9c8"
    "\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61\U00010a56\U00010a57"
    "\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86\U00010f87\U00010f88\U00010f89\U00011047"
    "\U00011048\U000110be\U000110bf\U000110c0\U000110c1\U00011141\U00011142\U00011143\U000111c5\U000111c6"
    "\U000111cd\U000111de\U000111df\U00011238\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c"
    "\U000115c2\U000115c3\U000115c9\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0"
    "\U000115d1\U000115d2\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c"
    "\U0001173d\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42"
    "\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38\U00016b44"
    "\U00016e98\U0001bc9f\U0001da88")
# datatrove's PUNCTUATION_SET: a word made only of these is a symbol, not a word, for Gopher.
_PUNCT = frozenset(
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(map(chr, (*range(0, 9), *range(11, 32), *range(127, 160))))).union(_TERMINAL)
# spaCy's sentencizer ends a sentence after one of these (its default punct_chars, the common ones).
_SENT_END = frozenset("!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉‼‽⁇⁈⁉⸮⸼꓿꘎꘏﹒﹖﹗！．？｡。")

# The word split: spaCy's English tokenizer (spacy/lang/punctuation.py, char_classes.py) as one
# regex. spaCy cuts text at spaces into chunks, peels prefix and suffix punctuation off each
# chunk, keeps a URL or a special case (abbreviation, contraction, emoticon) whole, and splits the
# rest at its infixes. Here each alternative below is tried in turn wherever a word may start.
_PQ = re.escape("…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧")
_ICON = ("\u00a6\u00a9\u00ae\u00b0\u2100-\u214f\u2195-\u21ff\u2300-\u23ff\u2440-\u24ff\u2500-\u25b6\u25b8-\u25c0"
         "\u25c2-\u25f7\u2600-\u266e\u2670-\u2767\u2794-\u27bf\u2800-\u28ff\u2b00-\u2bff\u3200-\u33ff"
         "\U0001f000-\U0001faff")  # symbols (Unicode So): always a word of their own
_SUF = f"[{_PQ}{_ICON}—–]"  # peeled off a chunk's end ("." only after some chars, see the last word rule)
_PRE = f"[{_PQ}{_ICON}§%=—–$£€¥₹₽₩]|\\+(?!\\d)"  # peeled off a chunk's start
_END = rf"(?=(?:{_SUF}|\.)*(?!\S))"  # nothing but suffixes left in the chunk
_UNITS = "km|cm|mm|m|kg|mg|g|lb|oz|ft|yd|in|mph|MB|KB|GB|TB|mb|kb|gb|tb|T|G|M|K|%"  # split off a number: 10 M
_ABBREV = ("Adm|Ak|Ala|Apr|Ariz|Ark|Aug|Bros|Calif|Co|Colo|Conn|Corp|Dec|Del|Dr|Feb|Fla|Ga|Gen|Gov|Ia|Id|Ill|Inc|"
           "Ind|Jan|Jr|Jul|Jun|Kan|Kans|Ky|La|Ltd|Mar|Mass|Md|Messrs|Mich|Minn|Miss|Mo|Mont|Mr|Mrs|Ms|Mt|Neb|Nebr|"
           "Nev|Nov|Oct|Okla|Ore|Pa|Prof|Rep|Rev|Sen|Sep|Sept|St|Tenn|Va|Wash|Wis|co|vs|[A-Za-zäöü]")  # keep "."
_INFIX = (rf"[{_ICON}]|\.\.+|…"
          r"|(?<=\d)[-+*^](?=[\d-])"                     # 2008-04-30
          r"|(?<=[a-z])\.(?=[A-Z])"                      # end.Start
          r"|(?<=[^\W\d_]),(?=[^\W\d_])"                 # a,b (not 1,000)
          r"|(?<=[^\W_])(?:---|--|——|[-–—~])(?=[^\W\d_])"  # well-known, 3-day (not COVID-19)
          r"|(?<=[^\W_])[:<>=/](?=[^\W\d_])")            # a/b (not 10/20 or 12:30)
_CONTRACTION = rf"[nN]['’][tT]{_END}|['’](?:[sSmMdD]|re|ve|ll|RE|VE|LL){_END}"  # do|n't, it|'s
_STOP = rf"(?=[{_ICON}.…+*^,~:<>=/'’nN%–—-])(?:{_INFIX}|{_CONTRACTION}|(?<=\d)[%+]{_END})"  # a word ends
_P = r"[.,;:!?)\]}\"'”’]"
_WORD = re.compile(
    r"(?=\S)(?:"                                                    # fails fast between words
    r"[^\W\d_]+(?=\s|$)"                                           # fast path: a plain word
    rf"|(?=\w{{1,7}}\.)(?:(?:[A-Za-z]\.){{2,}}|(?:{_ABBREV})\.){_END}"  # U.S. e.g. Mr.
    rf"|(?=[():;8=<])(?:\):|8\)|:\)|:\(|;\)|:-\)|:-\(|:D|:P|=\)|<3){_END}"  # emoticons: "(2020):" ends in "):"
    rf"|[^\W\d_]*[a-z](?={_P}+(?:\s|$))|[^\W\d_]+(?=[,;:!?)\]}}\"'”’]+(?:\s|$))|\d+(?={_P}*(?:\s|$))"  # fast paths
    rf"|{_CONTRACTION}|{_PRE}|\.\.+|(?:and/or|w/o){_END}"
    rf"|(?:(?<!\S)|(?<=\s[(\[{{<\"'“‘«]))(?:[\w+.-]{{2,}}://)?(?:[^\W_][\w-]{{0,62}}\.)+[a-z]{{2,63}}"
    rf"(?::\d{{2,5}})?(?:[/?#](?:\S*(?!{_SUF})[^\s.])?)?{_END}"        # a URL (host.tld) is one word
    rf"|{_INFIX}"
    rf"|\d+(?:[.,]\d+)*(?=(?:{_UNITS}){_END})|(?<=\d)(?:{_UNITS}){_END}"
    rf"|\S(?:(?!{_STOP})\S)*(?:(?<!{_SUF})(?<!\.)|(?<=(?<![A-Z])[A-Z]\.))"  # a word, less its suffixes
    r"|\S)")


def split_words(text: str) -> list[str]:
    """Words as datatrove splits English text (spaCy's tokenizer, whitespace dropped), emulated;
    e.g. "Don't stop (2020):" -> ["Do", "n't", "stop", "(", "2020", "):"]."""
    return _WORD.findall(text)


def _sentences(line: str) -> int:
    """Sentences in one line as datatrove counts them with spaCy's sentencizer: a new one starts
    at the first word after a sentence-ending mark that is not itself punctuation; at least 1."""
    n, seen_end = 1, False
    for w in split_words(line):
        if w in _SENT_END:
            seen_end = True
        elif seen_end and not all(unicodedata.category(c)[0] == "P" for c in w):
            n, seen_end = n + 1, False
    return n


# --- the rules ---------------------------------------------------------------------------

def _dups(items: list[str]) -> tuple[int, int]:
    """(duplicate elements, chars in duplicates), counting every occurrence after the first."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def gopher_repetition(text: str, words: list[str], cfg: GopherRepetitionConfig) -> str | None:
    """`words`: split_words(text)."""
    paras = re.split(r"\n{2,}", text.strip())
    n, chars = _dups(paras)
    if n / len(paras) > cfg.dup_para_frac:
        return "gopher_dup_para_frac"
    if chars / len(text) > cfg.dup_para_char_frac:
        return "gopher_dup_para_char_frac"
    lines = re.split(r"\n+", text)
    n, chars = _dups(lines)
    if n / len(lines) > cfg.dup_line_frac:
        return "gopher_dup_line_frac"
    if chars / len(text) > cfg.dup_line_char_frac:
        return "gopher_dup_line_char_frac"
    for k, frac in cfg.top_ngram_max_frac.items():
        n = int(k)
        grams = Counter(zip(*(words[i:] for i in range(n))))  # n-grams as tuples: counted in C
        if grams:
            g, c = grams.most_common(1)[0]
            if (sum(map(len, g)) + n - 1) * c / len(text) > frac:  # chars of the n-gram joined by spaces
                return f"gopher_top_{n}_gram"
    for k, frac in cfg.dup_ngram_max_frac.items():
        n = int(k)
        seen: set[str] = set()
        i, rep = 0, 0
        while i < len(words) - n + 1:  # repeated n-grams are skipped whole, so chars count once
            g = "".join(words[i:i + n])
            if g in seen:
                rep += len(g)
                i += n
            else:
                seen.add(g)
                i += 1
        if rep / len(text) > frac:
            return f"gopher_dup_{n}_grams"
    return None


def gopher_quality(text: str, words: list[str], cfg: GopherQualityConfig) -> str | None:
    """`words`: split_words(text). Word counts and lengths leave out punctuation; the ratios
    divide by all words, punctuation included (as datatrove does)."""
    real = [w for w in words if w.isalpha() or not all(c in _PUNCT for c in w)]
    if len(real) < cfg.min_doc_words:
        return "gopher_short_doc"
    if len(real) > cfg.max_doc_words:
        return "gopher_long_doc"
    if real:  # no words: no mean to test (datatrove's mean is NaN, which passes)
        avg = sum(map(len, real)) / len(real)
        if avg < cfg.min_avg_word_length:
            return "gopher_below_avg_word_length"
        if avg > cfg.max_avg_word_length:
            return "gopher_above_avg_word_length"
    n = len(words) or 1
    hashes, ellipses = text.count("#"), text.count("...") + text.count("…")
    if max(hashes, ellipses) / n > cfg.max_symbol_word_ratio:  # each alone ("for either", Gopher table A1)
        return "gopher_symbol_word_ratio"
    lines = text.splitlines() or [""]
    if sum(ln.lstrip().startswith(("•", "-")) for ln in lines) / len(lines) > cfg.max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if sum(ln.rstrip().endswith(("...", "…")) for ln in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if sum(1 for w in words if w.isalpha() or any(map(str.isalpha, w))) / n < cfg.min_alpha_words_ratio:
        return "gopher_alpha_words_ratio"
    if len(set(cfg.stop_words).intersection(words)) < cfg.min_stop_words:
        return "gopher_stop_words"
    return None


_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


def c4(text: str, cfg: C4Config) -> tuple[str, str | None]:
    """(text with C4's rejected lines removed, drop rule or None). The line rules run in the
    order of C4's code (tfds c4_utils, datatrove): long word, citations removed, terminal
    punctuation, word count, javascript, policy."""
    if cfg.filter_lorem_ipsum and "lorem ipsum" in text.lower():
        return text, "c4_lorem_ipsum"
    if cfg.filter_curly_bracket and "{" in text:
        return text, "c4_curly_bracket"
    kept, sentences = [], 0
    for line in text.splitlines():
        line = line.strip()
        words = line.split()  # before the citations go, as in C4's code
        if any(len(w) > cfg.max_word_length for w in words):
            continue
        line = _CITATION.sub("", line)
        if cfg.filter_no_terminal_punct and (not line.endswith((".", "?", "!", '"', "'")) or line.endswith("...")):
            continue
        if len(words) < cfg.min_words_per_line:
            continue
        low = line.lower()
        if cfg.filter_javascript and "javascript" in low:
            continue
        if cfg.filter_policy and any(p in low for p in _POLICY):
            continue
        if sentences < cfg.min_num_sentences:  # only compared with the minimum: stop counting there
            sentences += _sentences(line)
        kept.append(line)
    if sentences < cfg.min_num_sentences:
        return text, "c4_too_few_sentences"
    return "\n".join(kept).strip(), None


def fineweb(text: str, words: list[str], cfg: FineWebConfig) -> str | None:
    """`words`: split_words(text). A line ends in punctuation only if its last char is in
    _TERMINAL (trailing spaces and closing quotes do not count, as in datatrove)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "fineweb_empty"
    if sum(ln.endswith(_TERMINAL) for ln in lines) / len(lines) < cfg.line_punct_thr:
        return "fineweb_line_punct_ratio"
    if sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines) > cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    if _dups(lines)[1] / max(1, len(text.replace("\n", ""))) > cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    if text.count("\n") / max(1, len(words)) > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None


def check(text: str, cfg: QualityConfig) -> tuple[str, str | None]:
    """(possibly C4-edited text, first failing rule or None) for one document."""
    if not text or not text.strip():
        return text, "empty"
    words = split_words(text)
    # Gopher quality before repetition (datatrove runs them the other way round): the same
    # documents go, but a 3-word page is tagged "short_doc" rather than "top_2_gram".
    if cfg.gopher.enabled and (r := gopher_quality(text, words, cfg.gopher)):
        return text, r
    if cfg.gopher_rep.enabled and (r := gopher_repetition(text, words, cfg.gopher_rep)):
        return text, r
    out = text
    if cfg.c4.enabled:
        edited, r = c4(text, cfg.c4)
        if r:
            return text, r
        if cfg.c4.edit_lines:
            out = edited
    # FineWeb sees the C4-edited text, as in the FineWeb pipeline (C4 runs first).
    if cfg.fineweb.enabled and (r := fineweb(out, split_words(out) if out is not text else words, cfg.fineweb)):
        return text, r
    return out, None


def apply(table: pa.Table, cfg: QualityConfig | None = None) -> pa.Table:
    """Tag rejected rows "quality:<rule>"; C4-edit `text` of kept rows when enabled."""
    cfg = cfg or QualityConfig()
    texts = table["text"].to_pylist()
    keep = schema.kept_mask(table).to_pylist()
    out, reasons = [], []
    for t, k in zip(texts, keep):
        if not k:
            out.append(t)
            reasons.append(None)
            continue
        new, r = check(t or "", cfg)
        out.append(new if r is None else t)
        reasons.append(None if r is None else f"quality:{r}")
    idx = table.column_names.index("text")
    table = table.set_column(idx, pa.field("text", pa.string()), pa.array(out, type=pa.string()))
    return schema.set_drop(table, reasons)


def run(ds, cfg: QualityConfig, ctx=None):
    """Ray Data stage: quality rules on every batch (stateless tasks)."""
    return ds.map_batches(apply, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", num_cpus=1)
