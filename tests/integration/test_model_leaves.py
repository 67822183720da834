"""The model leaves raylm, through the CLI: pretrain, generate from a prompts file, export for
`transformers`, continue pretraining on a second corpus with the checkpoint's tokenizer (and
refuse shards of another tokenizer), fine-tune a classifier and evaluate it with `raylm eval`.

Data runs use the session Ray; training runs in process (train.num_workers 0) to stay quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raylm import cli, outputs

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "configs" / "tiny.yaml")
LOCAL = ["--set", "train.num_workers=0", "--set", "train.max_steps=40", "--set", "train.eval_interval=20"]


@pytest.fixture(autouse=True)
def _fresh_locks():
    yield
    outputs.release_locks()


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    got = capsys.readouterr()
    return rc, got.out, got.err


@pytest.fixture(scope="module")
def pretrained(ray_session, tmp_path_factory):
    """configs/tiny.yaml's data (BPE 512 on the Shakespeare slice) and a small model trained on it."""
    out = tmp_path_factory.mktemp("model") / "run"
    assert cli.main(["data", TINY, "--set", f"out={out}"]) == 0
    assert cli.main(["train", TINY, "--set", f"out={out}", *LOCAL]) == 0
    outputs.release_locks()
    return out


def _val_loss(ck: Path, shards: Path) -> float:
    from raylm.eval.lm import EvalConfig, evaluate_split
    from raylm.train.checkpoint import load_model

    return evaluate_split(load_model(ck).eval(), str(shards), EvalConfig(max_tokens=3000))["loss"]


def test_generate_and_export(pretrained, capsys, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ROMEO:\nFirst Citizen:\n")
    rc, out, err = _cli(capsys, "generate", TINY, "--set", f"out={pretrained}", "--prompts", str(prompts),
                        "--max-new-tokens", "12", "--temperature", "0")
    assert rc == 0, err
    rows = [json.loads(ln) for ln in (pretrained / "generate" / "completions.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["ROMEO:", "First Citizen:"] and all(r["completion"] for r in rows)
    rc, out, err = _cli(capsys, "generate", TINY, "--set", f"out={pretrained}", "--prompt", "x" * 200)
    assert rc == 2 and "the prompt is" in err and "this model reads 32 at most" in err

    transformers = pytest.importorskip("transformers")
    rc, out, err = _cli(capsys, "export", TINY, "--set", f"out={pretrained}", "--out", str(tmp_path / "hf"))
    assert rc == 0 and "GPT2LMHeadModel" in out, err
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert hf.config.n_positions == 32 and hf.config.vocab_size == 512


def test_continued_pretraining_keeps_the_checkpoints_tokenizer(pretrained, shared_data, capsys, tmp_path):
    ck = Path(json.loads((pretrained / "train" / "result.json").read_text())["checkpoint"])
    domain = tmp_path / "domain.txt"  # movie-review sentences: another corpus than the play
    lines = (shared_data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:3000]
    domain.write_text("\n\n".join(ln.split("\t")[0] for ln in lines), encoding="utf-8")
    corpus = ["--set", f"data.ingest.files.paths=[{domain}]"]

    # shards of the new corpus with their own tokenizer: same vocabulary size, other ids -> refused
    own = tmp_path / "own"
    assert _cli(capsys, "data", TINY, "--set", f"out={own}", *corpus)[0] == 0
    rc, out, err = _cli(capsys, "finetune", TINY, "--set", f"out={tmp_path / 'refused'}", *LOCAL,
                        "--set", f"finetune.init_from={ck}", "--set", f"finetune.data_dir={own / 'data' / 'shards'}")
    assert rc == 2 and "tokenized with another tokenizer than checkpoint" in err, err

    # tokenized with the checkpoint's tokenizer: continued pretraining lowers the loss on the new text
    same = tmp_path / "same"
    assert _cli(capsys, "data", TINY, "--set", f"out={same}", *corpus, "--set", f"data.tokenizer.path={ck}")[0] == 0
    shards = same / "data" / "shards"
    assert (shards / "tokenizer.json").read_text() == (ck / "tokenizer.json").read_text()
    run = tmp_path / "continued"
    rc, out, err = _cli(capsys, "finetune", TINY, "--set", f"out={run}", *LOCAL, "--set", f"finetune.init_from={ck}",
                        "--set", f"finetune.data_dir={shards}")
    assert rc == 0, err
    after = Path(json.loads((run / "finetune" / "result.json").read_text())["checkpoint"])
    assert (after / "tokenizer.json").read_text() == (ck / "tokenizer.json").read_text()
    assert _val_loss(after, shards) < _val_loss(ck, shards) - 0.1


def test_eval_reports_a_fine_tuned_classifier(pretrained, shared_data, capsys, tmp_path):
    lines = (shared_data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "train.tsv").write_text("".join(lines[:301]), encoding="utf-8")
    (tmp_path / "test.tsv").write_text("".join(lines[:1] + lines[301:401]), encoding="utf-8")
    ft = ["--set", "finetune.task=classify", "--set", f"finetune.train_file={tmp_path / 'train.tsv'}",
          "--set", f"finetune.test_file={tmp_path / 'test.tsv'}", "--set", "finetune.text_column=sentence",
          "--set", "train.max_steps=10", "--set", "train.num_workers=0", "--set", "train.eval_interval=10"]
    assert _cli(capsys, "finetune", TINY, "--set", f"out={pretrained}", *ft)[0] == 0
    rc, out, err = _cli(capsys, "eval", TINY, "--set", f"out={pretrained}", *ft)
    assert rc == 0, err
    assert "eval of classifier" in out and "accuracy" in out and "macro F1" in out
    report = json.loads((pretrained / "eval" / "report.json").read_text())
    assert report["task"] == "classify" and report["test"]["n"] == 100
    assert sum(map(sum, report["test"]["confusion_matrix"])) == 100
    # generate passes over the classifier for the pretrained language model; export takes the classifier
    assert _cli(capsys, "generate", TINY, "--set", f"out={pretrained}", "--prompt", "ROMEO:",
                "--max-new-tokens", "4")[0] == 0
    pytest.importorskip("transformers")
    rc, out, err = _cli(capsys, "export", TINY, "--set", f"out={pretrained}", "--out", str(tmp_path / "cls"))
    assert rc == 0 and "GPT2ForSequenceClassification" in out, err
