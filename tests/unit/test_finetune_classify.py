"""Classification fine-tuning, pure parts: reading labelled files, labels, batches, the
classifier's pooling, freezing and learning-rate groups, and a tiny in-process run."""

import json

import numpy as np
import pytest
import torch

from raylm.model.gpt import GPTConfig
from raylm.train.classify_data import (balanced_weights, batch_indices, label_list, pad_batch, read_rows,
                                       to_indices)
from raylm.train.finetune import FinetuneConfig, SequenceClassifier, freeze, param_groups
from tiny_classify import rerun_without_last_checkpoint, tiny_classify  # tests/tiny_classify.py


def test_read_tsv_with_header_and_quotes(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text('sentence\tlabel\nit \'s "good" \t1\nbad\t0\n\t1\nbroken line\n')
    texts, labels, skipped = read_rows(str(p), "auto", True, [], "sentence", "label")
    assert texts == ['it \'s "good"', "bad"] and labels == ["1", "0"]
    assert skipped == {"missing_text_or_label": 1, "wrong_column_count": 1}


def test_read_headerless_csv_and_jsonl(tmp_path):
    c = tmp_path / "b.csv"
    c.write_text('"hello, world",Sports\nplain,World\n')
    texts, labels, _ = read_rows(str(c), "auto", False, ["text", "label"], "text", "label", limit=1)
    assert texts == ["hello, world"] and labels == ["Sports"]
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"t": "x", "y": 2}) + "\nnot json\n" + json.dumps({"t": "z", "y": 0}) + "\n")
    texts, labels, skipped = read_rows(str(j), "auto", True, [], "t", "y")
    assert texts == ["x", "z"] and labels == ["2", "0"] and skipped == {"bad_json": 1}
    with pytest.raises(ValueError, match="lack text column"):
        read_rows(str(c), "csv", False, ["a", "b"], "text", "label")


def test_labels_mapping_and_unknown():
    assert label_list(["10", "2", "1", "2"], {}, []) == ["1", "2", "10"]
    assert label_list(["b", "a"], {}, []) == ["a", "b"]
    assert label_list(["0", "1"], {"0": "neg", "1": "pos"}, []) == ["neg", "pos"]
    d = to_indices(["t1", "t2", "t3"], ["1", "0", "7"], {"0": "neg", "1": "pos"}, ["neg", "pos"], {})
    assert d.labels == [1, 0] and d.texts == ["t1", "t2"] and d.skipped == {"unknown_label": 1}
    assert balanced_weights([0, 0, 0, 1], 3) == [pytest.approx(4 / 9), pytest.approx(4 / 3), 0.0]


def test_batches_are_disjoint_across_ranks_and_cover_each_epoch():
    n, B, W = 10, 2, 2
    epoch = np.concatenate([np.concatenate([batch_indices(n, s, B, r, W, 7) for r in range(W)]) for s in range(2)])
    assert len(set(epoch.tolist())) == 8  # two steps of 2 ranks x 2: 8 distinct examples of one epoch
    assert sorted(np.concatenate([batch_indices(n, s, 5, 0, 1, 7) for s in range(2)]).tolist()) == list(range(10))
    assert batch_indices(n, 3, B, 1, W, 7).tolist() == batch_indices(n, 3, B, 1, W, 7).tolist()  # step-determined
    assert batch_indices(n, 0, 10, 0, 1, 7).tolist() != batch_indices(n, 1, 10, 0, 1, 7).tolist()  # new epoch order


def _clf(pooling="last"):
    torch.manual_seed(0)
    return SequenceClassifier(GPTConfig(n_layer=3, n_head=2, n_embd=16, block_size=16, vocab_size=11), 3, pooling)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_does_not_change_logits(pooling):
    m = _clf(pooling).eval()
    seqs = [[1, 2, 3], [4, 5, 6, 7, 8]]
    x, lengths = pad_batch(seqs, pad_id=0)
    assert x.tolist()[0] == [1, 2, 3, 0, 0] and lengths.tolist() == [3, 5]
    together = m(x, lengths)
    alone = torch.cat([m(*pad_batch([s], 9)) for s in seqs])
    assert together.shape == (2, 3)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[0, 3:] = 10  # other pad values: same result
    torch.testing.assert_close(m(x2, lengths), together)


def test_auxiliary_lm_loss_is_next_token_loss_on_real_tokens():
    """lm_loss=True: the same class logits, plus the mean next-token cross-entropy over each
    text's own tokens (padding neither predicts nor is predicted), as the GPT body computes it."""
    import torch.nn.functional as F

    m = _clf().eval()
    seqs = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    x, lengths = pad_batch(seqs, pad_id=0)
    logits, lm = m(x, lengths, lm_loss=True)
    torch.testing.assert_close(logits, m(x, lengths))
    per_text = [m.gpt(torch.tensor([s[:-1]]), torch.tensor([s[1:]]))[1] for s in seqs if len(s) > 1]
    counts = [len(s) - 1 for s in seqs if len(s) > 1]  # 2 + 4 targets; the 1-token text has none
    expected = sum(loss * c for loss, c in zip(per_text, counts)) / sum(counts)
    torch.testing.assert_close(lm, expected)
    _, none = m(*pad_batch([[3], [4]], 0), lm_loss=True)  # nothing to predict: 0, not nan
    assert none.item() == 0.0
    assert F.cross_entropy(m.gpt.lm_head(m.gpt.hidden(x)[:, :-1]).reshape(-1, 11), x[:, 1:].reshape(-1)) != lm


def test_lowercase_option_lowercases_every_split(tmp_path):
    from raylm.train.classify_loop import load_split

    f = tmp_path / "d.tsv"
    f.write_text("sentence\tlabel\nA Fine FILM\t1\nDull\t0\n")
    ft = FinetuneConfig(task="classify", train_file=str(f), text_column="sentence", lowercase=True)
    assert load_split(str(f), ft, ["0", "1"], 0).texts == ["a fine film", "dull"]
    assert load_split(str(f), FinetuneConfig(task="classify", train_file=str(f), text_column="sentence"),
                      ["0", "1"], 0).texts == ["A Fine FILM", "Dull"]


def test_freeze_and_layerwise_groups():
    m = _clf()
    n = freeze(m, embeddings=True, layers=1)
    block0 = sum(p.numel() for p in m.gpt.blocks[0].parameters())
    assert n == m.gpt.wte.weight.numel() + m.gpt.wpe.weight.numel() + block0
    assert not m.gpt.wte.weight.requires_grad and m.gpt.blocks[1].attn.c_attn.weight.requires_grad
    groups = param_groups(m, 0.1, head_lr_mult=10.0, layer_decay=0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale_of[id(m.head.weight)] == 10.0
    assert scale_of[id(m.gpt.ln_f.weight)] == 1.0
    assert scale_of[id(m.gpt.blocks[2].mlp.c_fc.weight)] == 0.5
    assert scale_of[id(m.gpt.blocks[1].mlp.c_fc.weight)] == 0.25
    assert id(m.gpt.wte.weight) not in scale_of and id(m.gpt.blocks[0].mlp.c_fc.weight) not in scale_of
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert wd[id(m.head.weight)] == 0.1 and wd[id(m.head.bias)] == 0.0
    with pytest.raises(ValueError):
        freeze(_clf(), False, 4)


def test_config_checks():
    with pytest.raises(ValueError, match="train_file"):
        FinetuneConfig(task="classify")
    with pytest.raises(ValueError, match="class_weights"):
        FinetuneConfig(labels=["a", "b"], class_weights=[1.0])
    with pytest.raises(ValueError, match="layer_decay"):
        FinetuneConfig(layer_decay=0.0)
    with pytest.raises(ValueError, match="lm_loss_weight"):
        FinetuneConfig(lm_loss_weight=-0.5)
    FinetuneConfig(task="classify", train_file="x.tsv", labels=["0", "1"], positive_label="1")


def test_tiny_classify_in_process(tmp_path):
    """num_workers=0: no Ray. Trains, keeps the best validation weights, writes the report;
    evaluate_classifier on the final checkpoint reproduces the test numbers."""
    from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
    from raylm.train.finetune import evaluate_classifier, run_classify

    data, tok_path, src = tiny_classify(tmp_path)
    ft = FinetuneConfig(task="classify", train_file=str(data), val_file=str(data), text_column="sentence",
                        tokenizer=str(tok_path), pooling="mean", head_lr_mult=5.0, layer_decay=0.8,
                        balanced_class_weights=True, positive_label="1", head_dropout=0.0)
    tc = TrainConfig(max_steps=30, batch_size=8, eval_interval=10, log_interval=10, num_workers=0,
                     optim=OptimConfig(lr=3e-3, weight_decay=0.0),
                     schedule=ScheduleConfig(warmup_steps=0, name="constant"))
    out = tmp_path / "ft"
    rep = run_classify(ft, tc, str(out), 1, str(src))
    t = rep["test"]
    assert rep["labels"] == ["0", "1"] and t["n"] == 24 and t["binary"]["positive"] == "1"
    assert t["accuracy"] == 1.0  # 8 separable strings seen 90 times each
    assert rep["final"]["step"] == 30 and rep["init_from"] == str(src)
    assert (out / "report.md").read_text().count("| 1 |") >= 1 and json.loads((out / "report.json").read_text())
    again = evaluate_classifier(rep["checkpoint"], ft, str(tmp_path / "ev"))
    assert again["test"]["confusion_matrix"] == t["confusion_matrix"]
    assert again["test"]["loss"] == pytest.approx(t["loss"], rel=1e-5)
    # a finished run resumed: nothing trains, the same final numbers come back
    rep2 = run_classify(ft, tc, str(out), 1, str(src))
    assert rep2["test"]["confusion_matrix"] == t["confusion_matrix"] and rep2["final"]["step"] == 30


def test_lowercase_classifier_is_evaluated_lowercased(tmp_path):
    """A classifier trained with lowercase: true (and the auxiliary LM loss) lowercases whatever
    it is evaluated on, even under a config without the flag (the preprocessing travels in the
    checkpoint, like max_len)."""
    from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
    from raylm.train.finetune import evaluate_classifier, run_classify

    data, tok_path, src = tiny_classify(tmp_path)
    upper = tmp_path / "upper.tsv"
    upper.write_text(data.read_text().upper().replace("SENTENCE\tLABEL", "sentence\tlabel"))
    ft = FinetuneConfig(task="classify", train_file=str(upper), val_file=str(upper), text_column="sentence",
                        tokenizer=str(tok_path), head_dropout=0.0, lowercase=True, lm_loss_weight=0.5)
    tc = TrainConfig(max_steps=30, batch_size=8, eval_interval=10, log_interval=10, num_workers=0,
                     optim=OptimConfig(lr=3e-3, weight_decay=0.0),
                     schedule=ScheduleConfig(warmup_steps=0, name="constant"))
    rep = run_classify(ft, tc, str(tmp_path / "ft"), 1, str(src))
    assert rep["test"]["accuracy"] == 1.0  # upper-case text the lowercase char tokenizer could not read otherwise
    plain = FinetuneConfig(task="classify", train_file=str(upper), test_file=str(upper), text_column="sentence")
    again = evaluate_classifier(rep["checkpoint"], plain, str(tmp_path / "ev"))
    assert again["test"]["confusion_matrix"] == rep["test"]["confusion_matrix"]


def test_early_stopping_and_random_init(tmp_path):
    """Patience 1 on a metric that saturates at the first evaluation stops at the second; the
    reported model is the one of the best step. Random init needs a model config."""
    from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
    from raylm.train.finetune import run_classify

    data, tok_path, src = tiny_classify(tmp_path)
    ft = FinetuneConfig(task="classify", train_file=str(data), val_file=str(data), text_column="sentence",
                        tokenizer=str(tok_path), head_dropout=0.0, freeze_embeddings=True, metric="accuracy")
    tc = TrainConfig(max_steps=40, batch_size=8, eval_interval=10, log_interval=10, num_workers=0,
                     early_stopping_patience=1, optim=OptimConfig(lr=3e-3, weight_decay=0.0),
                     schedule=ScheduleConfig(warmup_steps=0, name="constant"))
    rep = run_classify(ft, tc, str(tmp_path / "a"), 1, str(src))
    hist = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    evals = [h for h in hist if "val_accuracy" in h]
    best = max(evals, key=lambda h: h["val_accuracy"])  # max() keeps the first of equals, as the loop does
    assert rep["final"]["best_step"] == best["step"]
    assert rep["final"]["best_val"] == best["val_accuracy"]  # the dev score of the weights tested
    assert rep["final"]["step"] == best["step"] + 10 < 40  # one evaluation without improvement, then stop
    assert [h["early_stopped"] for h in evals] == [False] * (len(evals) - 1) + [True]
    assert rep["test"]["accuracy"] == best["val_accuracy"]  # best-step weights were restored (test = val file)
    with pytest.raises(ValueError, match="model config"):
        run_classify(ft, tc, str(tmp_path / "b"), 1, None)
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)  # vocab 0: from the tokenizer
    rep = run_classify(ft, tc, str(tmp_path / "c"), 1, None, model_cfg=cfg)
    assert rep["init_from"] is None and rep["config"]["model"]["vocab_size"] > 0


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    """Remove the last checkpoint (a crash after step 10): the rerun resumes at step 10 and ends
    with the same test loss as the uninterrupted run (batches and dropout depend on the step only)."""
    from raylm.train.config import OptimConfig, ScheduleConfig, TrainConfig
    from raylm.train.finetune import run_classify

    data, tok_path, src = tiny_classify(tmp_path)
    ft = FinetuneConfig(task="classify", train_file=str(data), val_file=str(data), text_column="sentence",
                        tokenizer=str(tok_path), head_dropout=0.2, metric="loss")
    tc = TrainConfig(max_steps=20, batch_size=4, eval_interval=10, log_interval=10, num_workers=0, keep_checkpoints=0,
                     optim=OptimConfig(lr=1e-3), schedule=ScheduleConfig(warmup_steps=2))
    full = run_classify(ft, tc, str(tmp_path / "full"), 3, str(src))
    again = rerun_without_last_checkpoint(ft, tc, tmp_path / "cut", str(src))
    assert again["final"]["step"] == 20
    assert again["test"]["loss"] == pytest.approx(full["test"]["loss"], rel=1e-6)


def test_config_loads_through_the_strict_loader():
    from raylm.config import from_dict

    sst = from_dict(FinetuneConfig, {"task": "classify", "train_file": "sst2/train.tsv", "text_column": "sentence",
                                     "label_map": {"0": "negative", "1": "positive"}, "positive_label": "positive",
                                     "head_lr_mult": "1e1", "layer_decay": 0.8}, "finetune")
    assert sst.head_lr_mult == 10.0 and sst.label_map["1"] == "positive"
    ag = from_dict(FinetuneConfig, {"task": "classify", "train_file": "ag.tsv", "header": False,
                                    "columns": ["text", "label"], "metric": "macro_f1"}, "finetune")
    assert ag.columns == ["text", "label"] and not ag.header
    with pytest.raises(ValueError):
        from_dict(FinetuneConfig, {"pooling": "max"}, "finetune")
