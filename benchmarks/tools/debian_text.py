"""Unlabelled general English from Debian packages, as jsonl for `raylm data` (issue 7 exploration).

Downloads (apt-get download, no root needed for the download itself) and unpacks:
  - wordnet-base (WordNet 3.0): each adjective, adverb and verb synset as
    "lemma, lemma: gloss; "example"" lines, 20 synsets per document (nouns left out: mostly
    species, places and jargon);
  - fortunes (fortune-mod's English cookies): 10 cookies per document.
Each record carries `url` (package file and position) and `license`, so provenance reaches the
shards. Then:

  .venv/bin/python -m benchmarks.tools.debian_text --out runs/debian_text
  raylm data configs/gather_debtext.yaml
  .venv/bin/python -m benchmarks.transfer_sst2 --gathered runs/gather_debtext/data/shards --tag debtext

Measured once (benchmarks/results/transfer_sst2_gathered_debtext.json): it does not help SST-2
transfer (1.0M more tokens; pretrained 0.790 against random init 0.791 on test.tsv).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
from pathlib import Path

PACKAGES = ("wordnet-base", "fortunes")
WORDNET_LICENSE = "WordNet-3.0 (Princeton WordNet License)"
FORTUNES_LICENSE = "fortune-mod data files (see /usr/share/doc/fortunes/copyright)"


def unpack(out: Path) -> Path:
    """apt-get download + dpkg-deb -x of PACKAGES into out/root (skipped if already there)."""
    root = out / "root"
    if (root / ".done").exists():
        return root
    debs = out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    (root / ".done").write_text("")
    return root


def wordnet_docs(root: Path, per_doc: int = 20):
    for pos in ("adj", "adv", "verb"):
        lines = []
        with open(root / f"usr/share/wordnet/data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:  # the license header
                    continue
                head, gloss = line.split("|", 1)
                p = head.split()
                n = int(p[3], 16)
                words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in p[4:4 + 2 * n:2]]
                lines.append(", ".join(words) + ": " + gloss.strip())
        for i in range(0, len(lines), per_doc):
            yield {"text": "\n".join(lines[i:i + per_doc]), "url": f"wordnet-base:data.{pos}#{i}",
                   "license": WORDNET_LICENSE}


def fortune_docs(root: Path, per_doc: int = 10):
    for path in sorted(glob.glob(str(root / "usr/share/games/fortunes/*"))):
        name = os.path.basename(path)
        if "." in name or os.path.islink(path):  # .dat indexes, .u8 links
            continue
        text = Path(path).read_text("utf-8", errors="replace")
        items = [s.strip() for s in re.split(r"^%$", text, flags=re.M) if s.strip()]
        for i in range(0, len(items), per_doc):
            yield {"text": "\n\n".join(items[i:i + per_doc]), "url": f"fortunes:{name}#{i}",
                   "license": FORTUNES_LICENSE}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/debian_text")
    a = p.parse_args()
    out = Path(a.out)
    root = unpack(out)
    for name, docs in (("wordnet.jsonl", wordnet_docs(root)), ("fortunes.jsonl", fortune_docs(root))):
        tmp = out / (name + ".tmp")
        n = 0
        with open(tmp, "w") as f:
            for d in docs:
                f.write(json.dumps(d) + "\n")
                n += 1
        os.replace(tmp, out / name)
        print(f"{out / name}: {n} documents")


if __name__ == "__main__":
    main()
