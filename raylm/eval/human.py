"""Human evaluation kit: rating sheets out, filled sheets in, mean scores and rater agreement.

Export: generated samples (per model) become a rating sheet, CSV and a self-contained HTML
page (no network; a button saves the filled ratings as CSV in the same columns). Each row is
one output; raters give fluency, coherence and relevance on a 1-5 scale. With `blind`, model
names are replaced by codes (S1, S2, ...) and the rows shuffled; key.json maps codes back.

Import: filled sheets (any number, one per rater or stacked) are read back, model codes
resolved through the key, and `summarize` reports per-model means and, per criterion,
Krippendorff's alpha (ordinal, interval and nominal; any number of raters, missing ratings
allowed) and a Fleiss-style kappa (per-item rater counts may differ).
"""

from __future__ import annotations

import csv
import html
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raylm import atomic

CRITERIA = ("fluency", "coherence", "relevance")
COLUMNS = ("item_id", "model", "prompt", "output", *CRITERIA, "rater", "comment")
SCALE = (1, 2, 3, 4, 5)


@dataclass
class HumanEvalConfig:
    export: bool = False        # write a rating sheet of the generated samples next to the eval report
    blind: bool = True          # hide model names behind codes (key.json maps them back)
    raters: list[str] = field(default_factory=list)  # one sheet per rater name; [] = one shared sheet
    seed: int = 0               # row order and code assignment
    sheets: list[str] = field(default_factory=list)  # `raylm rate`: filled CSV sheets to read back
    key: str | None = None      # `raylm rate`: key.json that unblinds the model codes


def export_sheet(samples: dict[str, list[dict]], out: str | Path, raters: list[str] | None = None,
                 blind: bool = True, seed: int = 0) -> dict:
    """Write sheet.csv + sheet.html (or sheet-<rater>.* per rater) and key.json under `out`.

    `samples`: model name -> [{"prompt": str, "text": str}, ...]. Returns {"files": [...], "rows": n}."""
    rng = random.Random(seed)
    names = sorted(samples)
    codes = names[:]
    if blind:
        rng.shuffle(codes)
        codes = {m: f"S{i + 1}" for i, m in enumerate(codes)}
    else:
        codes = {m: m for m in names}
    rows = [{"item_id": "", "model": codes[m], "prompt": s.get("prompt", ""), "output": s.get("text", "")}
            for m in names for s in samples[m]]
    if blind:
        rng.shuffle(rows)  # interleave models so position does not reveal them
    for i, r in enumerate(rows):
        r["item_id"] = f"i{i:04d}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = {"blind": blind, "codes": {c: m for m, c in codes.items()},
           "items": {r["item_id"]: {"model": r["model"]} for r in rows}}
    atomic.write_text(out / "key.json", json.dumps(key, indent=2))
    files = []
    for rater in (raters or [""]):
        stem = f"sheet-{rater}" if rater else "sheet"
        filled = [{**r, **{c: "" for c in CRITERIA}, "rater": rater, "comment": ""} for r in rows]
        _write_csv(out / f"{stem}.csv", filled)
        atomic.write_text(out / f"{stem}.html", _html(filled, rater, f"{stem}-filled.csv"))
        files += [str(out / f"{stem}.csv"), str(out / f"{stem}.html")]
    return {"files": files, "key": str(out / "key.json"), "rows": len(rows)}


def _write_csv(path: Path, rows: list[dict]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)

    atomic.write_with(path, write)


def _html(rows: list[dict], rater: str, filename: str) -> str:
    e = html.escape
    opts = "".join(f"<option>{v}</option>" for v in SCALE)
    body = []
    for r in rows:
        cells = "".join(f'<td><select name="{c}"><option value=""></option>{opts}</select></td>' for c in CRITERIA)
        body.append(f'<tr data-item="{e(r["item_id"])}" data-model="{e(r["model"])}"><td>{e(r["item_id"])}</td>'
                    f'<td class="t">{e(r["prompt"])}</td><td class="t">{e(r["output"])}</td>{cells}'
                    f'<td><input name="comment"></td></tr>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>raylm rating sheet</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}}.t{{white-space:pre-wrap;max-width:40em}}</style></head><body>
<h1>Rate each output</h1>
<p>Scale 1 (worst) to 5 (best). <b>Fluency</b>: is it well-formed language? <b>Coherence</b>: does it hang
together? <b>Relevance</b>: does it follow the prompt? Leave a cell empty if you cannot judge.</p>
<p>Rater name: <input id="rater" value="{e(rater)}"> <button onclick="save()">Save filled CSV</button></p>
<table><tr><th>item</th><th>prompt</th><th>output</th>{''.join(f'<th>{c}</th>' for c in CRITERIA)}<th>comment</th></tr>
{chr(10).join(body)}</table>
<script>
const COLS = {json.dumps(list(COLUMNS))};
function q(v) {{ return '"' + String(v).replace(/"/g, '""') + '"'; }}
function save() {{
  const rater = document.getElementById('rater').value;
  const lines = [COLS.join(',')];
  for (const tr of document.querySelectorAll('tr[data-item]')) {{
    const td = tr.querySelectorAll('td.t');
    const v = n => tr.querySelector('[name=' + n + ']').value;
    lines.push([tr.dataset.item, tr.dataset.model, td[0].textContent, td[1].textContent,
                v('fluency'), v('coherence'), v('relevance'), rater, v('comment')].map(q).join(','));
  }}
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([lines.join('\\r\\n')], {{type: 'text/csv'}}));
  a.download = {json.dumps(filename)};
  a.click();
}}
</script></body></html>
"""


def read_sheets(paths: list[str | Path], key: str | Path | None = None) -> tuple[list[dict], dict]:
    """(ratings, problems). One rating per (item, rater) with int scores or None per criterion;
    model codes resolved through `key`. A score outside 1-5 is counted and treated as missing;
    a sheet without a rater name uses its file name as the rater."""
    codes = json.loads(Path(key).read_text())["codes"] if key else {}
    ratings, problems = [], {"invalid_score": 0, "unrated_rows": 0, "duplicate": 0}
    seen = set()
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rater = (row.get("rater") or "").strip() or Path(path).stem
                scores = {}
                for c in CRITERIA:
                    v = (row.get(c) or "").strip()
                    try:
                        x = int(float(v)) if v else None
                    except ValueError:
                        x = -1
                    if x is not None and x not in SCALE:
                        problems["invalid_score"] += 1
                        x = None
                    scores[c] = x
                if all(v is None for v in scores.values()):
                    problems["unrated_rows"] += 1
                    continue
                if (row["item_id"], rater) in seen:
                    problems["duplicate"] += 1
                    continue
                seen.add((row["item_id"], rater))
                model = codes.get(row["model"], row["model"])
                ratings.append({"item_id": row["item_id"], "model": model, "rater": rater, **scores})
    return ratings, problems


def krippendorff_alpha(units: list[list[float]], level: str = "ordinal") -> float:
    """Krippendorff's alpha over units (each the list of values raters gave it; missing left out).

    Coincidence matrix o[c, k] = sum over units of (ordered c-k pairs) / (m_u - 1); units with
    fewer than two values are not pairable. alpha = 1 - (n - 1) * sum(o * d) / sum(n_c n_k d),
    with d the squared difference for `level` (Krippendorff 2011, "Computing Krippendorff's
    Alpha-Reliability"). NaN when there is no pairable unit or no variation at all."""
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u})
    if not units or len(values) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in units:
        counts = np.bincount([index[v] for v in u], minlength=len(values)).astype(float)
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(u) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    v = np.asarray(values, dtype=float)
    if level == "nominal":
        d = 1.0 - np.eye(len(values))
    elif level == "interval":
        d = (v[:, None] - v[None, :]) ** 2
    elif level == "ordinal":
        cum = np.cumsum(n_c)  # d(c, k) = (sum of n_g for g from c to k - (n_c + n_k) / 2)^2
        lo = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
        hi = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
        between = cum[hi] - np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        d = (between - (n_c[:, None] + n_c[None, :]) / 2) ** 2
    else:
        raise ValueError(f"level must be nominal, ordinal or interval, got {level!r}")
    expected = (np.outer(n_c, n_c) * d).sum()
    return float(1.0 - (n - 1) * (o * d).sum() / expected) if expected > 0 else math.nan


def fleiss_kappa(units: list[list[int]]) -> float:
    """Fleiss' kappa over units (category labels given by each rater); units with < 2 ratings
    are skipped. Per-item agreement uses each item's own rater count, which is Fleiss' formula
    when every item has the same number of raters."""
    units = [u for u in units if len(u) >= 2]
    if not units:
        return math.nan
    cats = sorted({v for u in units for v in u})
    idx = {c: i for i, c in enumerate(cats)}
    p_items, totals = [], np.zeros(len(cats))
    for u in units:
        c = np.bincount([idx[v] for v in u], minlength=len(cats)).astype(float)
        totals += c
        p_items.append((np.sum(c * c) - len(u)) / (len(u) * (len(u) - 1)))
    p = totals / totals.sum()
    pe = float(np.sum(p * p))
    return float((np.mean(p_items) - pe) / (1 - pe)) if pe < 1 else math.nan


def summarize(ratings: list[dict]) -> dict:
    """Mean (and std, n) per model and criterion; agreement per criterion across raters."""
    models = sorted({r["model"] for r in ratings})
    out = {"raters": sorted({r["rater"] for r in ratings}), "items": len({r["item_id"] for r in ratings}),
           "models": {}, "agreement": {}}
    for m in models:
        out["models"][m] = {}
        for c in CRITERIA:
            xs = np.array([r[c] for r in ratings if r["model"] == m and r[c] is not None], dtype=float)
            out["models"][m][c] = {"mean": float(xs.mean()) if xs.size else math.nan,
                                   "std": float(xs.std(ddof=1)) if xs.size > 1 else math.nan, "n": int(xs.size)}
    for c in CRITERIA:
        by_item: dict[str, list[int]] = {}
        for r in ratings:
            if r[c] is not None:
                by_item.setdefault(r["item_id"], []).append(r[c])
        units = list(by_item.values())
        out["agreement"][c] = {
            "krippendorff_alpha_ordinal": krippendorff_alpha(units, "ordinal"),
            "krippendorff_alpha_interval": krippendorff_alpha(units, "interval"),
            "krippendorff_alpha_nominal": krippendorff_alpha(units, "nominal"),
            "fleiss_kappa": fleiss_kappa(units),
            "items_with_2plus_ratings": sum(len(u) >= 2 for u in units)}
    return out


def summary_markdown(s: dict) -> str:
    lines = ["# Human evaluation", "", f"- raters: {', '.join(s['raters'])}", f"- items rated: {s['items']}", "",
             "| model | " + " | ".join(CRITERIA) + " |", "|---" * (len(CRITERIA) + 1) + "|"]
    for m, per in s["models"].items():
        lines.append(f"| {m} | " + " | ".join(f"{per[c]['mean']:.2f} (n={per[c]['n']})" for c in CRITERIA) + " |")
    lines += ["", "Agreement between raters (1 = perfect, 0 = chance):", "",
              "| criterion | alpha (ordinal) | alpha (interval) | Fleiss kappa | items with 2+ ratings |",
              "|---|---|---|---|---|"]
    for c, a in s["agreement"].items():
        lines.append(f"| {c} | {a['krippendorff_alpha_ordinal']:.3f} | {a['krippendorff_alpha_interval']:.3f} | "
                     f"{a['fleiss_kappa']:.3f} | {a['items_with_2plus_ratings']} |")
    return "\n".join(lines) + "\n"


def report(paths: list[str | Path], key: str | Path | None, out: str | Path) -> dict:
    """Read filled sheets, summarize, write <out>/human_report.{json,md}; returns the summary."""
    ratings, problems = read_sheets(paths, key)
    if not ratings:
        raise ValueError(f"no ratings found in {[str(p) for p in paths]} (problems: {problems})")
    s = {**summarize(ratings), "problems": problems, "sheets": [str(p) for p in paths]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "human_report.json").write_text(json.dumps(_nan_to_none(s), indent=2))
    (out / "human_report.md").write_text(summary_markdown(s))
    return s


def _nan_to_none(x):
    """Strict JSON: an undefined statistic (NaN) is written as null."""
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return None if isinstance(x, float) and math.isnan(x) else x
