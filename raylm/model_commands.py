"""The CLI commands that use a trained checkpoint: `eval`, `generate`, `export`, and `rate`
(human ratings of its samples). Which checkpoint (the run's newest, or the one named), its
tokenizer and its local copy come from commands.py, as for fine-tuning.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from raylm import config as C
from raylm import console, outputs, provenance, storage, tracking
from raylm.commands import (_connect, _hold, _is_classifier, _local_checkpoint, _newest, _paths, _scratch,
                            _tokenizer_of, _writing, load)
from raylm.root import RootConfig
from raylm.train.trainer import local_path


def evaluate(args, cfg: RootConfig | None = None) -> dict:
    """The run's newest checkpoint (or eval.checkpoint): a language model on the validation
    shards, or a classifier on finetune.test_file (else val_file). Runs as a Ray task
    (eval.cpus, eval.use_gpu, eval.resources, eval.label_selector), so on a cluster it uses a
    worker's GPU, not the head's CPU; the task returns the report and the driver writes it."""
    from raylm.eval.task import run_on_ray

    cfg = cfg or load(args)
    p = _paths(cfg)
    _hold(args, cfg)
    C.save(cfg, storage.join(p["eval"], "config.yaml"))
    ck = local_path(cfg.eval.checkpoint) if cfg.eval.checkpoint else _newest(cfg)
    stage = "finetune" if storage.is_file(storage.join(p["finetune"], "result.json")) else "train"
    data_dir = local_path(cfg.finetune.data_dir) if stage == "finetune" and cfg.finetune.data_dir else p["shards"]
    _connect(args, cfg, "eval.label_selector")
    ft = replace(cfg.finetune, **{k: local_path(v) for k in ("train_file", "val_file", "test_file")
                                  if (v := getattr(cfg.finetune, k))})  # the task may run on another node
    with tracking.run(cfg.tracking, p["out"], "eval", C.to_dict(cfg)) as tracked:
        report, files = run_on_ray(cfg.eval, ft, ck, data_dir, cfg.seed, cfg.cluster.local_dir)
        if "report.json" in files:  # the task ran on a worker: the driver's command, host and code
            files["report.json"] = json.dumps({**json.loads(files["report.json"]),
                                               "provenance": provenance.record()}, indent=2, default=str).encode()
        with _writing(p["eval"]) as d:
            for name, data in files.items():
                (d / name).parent.mkdir(parents=True, exist_ok=True)
                (d / name).write_bytes(data)
        if tracked:
            tracked.log_rows([{"step": 0, **outputs.flatten(report)}])  # log_rows keeps the numbers
            tracked.set_tag("raylm.checkpoint", str(ck))
            tracked.log_artifacts([storage.join(p["eval"], n) for n in ("report.md", "report.json")])
    report_md = storage.join(p["eval"], "report.md")
    if report.get("task") == "classify":
        t = report["test"]
        console.summary(f"[raylm] eval of classifier {ck} on {t['file']}: accuracy {t['accuracy']:.4f}, macro F1 "
              f"{t['macro_f1']:.4f} ({t['n']:,} examples)")
        console.summary(f"[raylm] report: {report_md} (per-class precision / recall / F1, confusion matrix)")
        return report
    if "mlm" in report:  # an encoder
        r = report["mlm"]
        console.summary(f"[raylm] eval on {r['split']}: masked-token loss {r['masked_loss']:.4f} nats, accuracy "
                        f"{r['masked_accuracy']:.4f} ({r['tokens_masked']:,} masked tokens)")
        console.summary(f"[raylm] report: {report_md}")
        return report
    r = report["lm"]
    console.summary(f"[raylm] eval on {r['split']}: loss {r['loss']:.4f} nats/token, perplexity {r['perplexity']:.2f}, "
          f"{r['bits_per_byte']:.3f} bits per byte ({r['tokens_scored']:,} tokens)")
    console.summary(f"[raylm] report: {report_md} (samples included)")
    return report


def generate(args) -> None:
    """Text from a language-model checkpoint: --prompt (streamed), --prompts FILE (jsonl out) or
    --interactive. Sampling defaults come from the eval section; flags override them."""
    import torch
    from tokenizers import Tokenizer

    from raylm.data.tokenize import EOS
    from raylm.eval.generate import Generator, Sampling, interactive, read_prompts, run_file
    from raylm.train.checkpoint import load_model

    modes = [m for m in ("prompt", "prompts", "interactive") if getattr(args, m) not in (None, False)]
    if len(modes) != 1:
        raise ValueError("give exactly one of --prompt TEXT, --prompts FILE, --interactive")
    cfg = load(args)
    p = _paths(cfg)
    ck = _local_checkpoint(local_path(args.checkpoint) if args.checkpoint else _newest(cfg, language_model=True),
                           _scratch(cfg, "generate", "checkpoint"))
    if _is_classifier(str(ck)):
        raise ValueError(f"{ck} is a classifier: raylm generate needs a language-model checkpoint")
    e = cfg.eval
    s = Sampling(max_new_tokens=args.max_new_tokens or e.sample_tokens,
                 temperature=e.temperature if args.temperature is None else args.temperature,
                 top_k=e.top_k if args.top_k is None else args.top_k,
                 top_p=e.top_p if args.top_p is None else args.top_p,
                 seed=cfg.seed if args.seed is None else args.seed)
    if s.max_new_tokens < 1 or s.temperature < 0 or s.top_k < 0 or not 0 < s.top_p <= 1:
        raise ValueError("--max-new-tokens must be >= 1, --temperature >= 0, --top-k >= 0, 0 < --top-p <= 1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = Tokenizer.from_str(_tokenizer_of(ck, cfg))
    gen = Generator(load_model(ck, device), tok, tok.token_to_id(EOS), s, e.safeguard)
    if args.prompt is not None:
        r = gen.complete(args.prompt, on_text=lambda piece: print(piece, end="", flush=True))
        print(f"\n[withheld: {r['withheld']}]" if r["withheld"] else "")
    elif args.prompts:
        out = local_path(args.output) if args.output else storage.join(p["out"], "generate", "completions.jsonl")
        with _writing(out.rsplit("/", 1)[0] if storage.is_remote(out) else str(Path(out).parent)) as d:
            n = run_file(gen, read_prompts(args.prompts), d / Path(out.split("?", 1)[0]).name)
        console.summary(f"[raylm] generate: {n['written']} completions ({n['errors']} prompts refused, {n['withheld']} "
              f"withheld) in {out}")
    else:
        interactive(gen)


def export(args) -> None:
    """A checkpoint in the Hugging Face layout (raylm/export.py)."""
    from raylm.export import export_classifier, export_lm
    from raylm.train.checkpoint import load_model
    from raylm.train.finetune import load_classifier

    cfg = load(args)
    ck = _local_checkpoint(local_path(args.checkpoint) if args.checkpoint else _newest(cfg),
                           _scratch(cfg, "export", "checkpoint"))
    tokenizer = _tokenizer_of(ck, cfg)
    out = local_path(args.export_out)
    kind = "GPT2ForSequenceClassification" if _is_classifier(str(ck)) else "GPT2LMHeadModel"
    with _writing(out) as d:
        target = d if storage.is_remote(out) else Path(out)
        if kind == "GPT2ForSequenceClassification":
            model, meta = load_classifier(ck)
            export_classifier(model, meta, tokenizer, target)
        else:
            e = cfg.eval
            export_lm(load_model(ck).eval(), tokenizer, target,
                      {"do_sample": e.temperature > 0, "temperature": e.temperature or 1.0,
                       "top_k": e.top_k, "top_p": e.top_p, "max_new_tokens": e.sample_tokens})
    console.summary(f"[raylm] exported {ck} as {kind} to {out}: transformers.AutoModel*.from_pretrained({str(out)!r}) "
          f"and AutoTokenizer.from_pretrained({str(out)!r}) load it")


def rate(args) -> dict:
    """Read filled human-evaluation sheets back: mean scores per model, agreement between raters."""
    from raylm.eval import human

    cfg = load(args)
    h = cfg.eval.human
    if not h.sheets:
        raise ValueError("eval.human.sheets is empty: list the filled rating sheets (CSV) to read")
    out = _paths(cfg)["eval"]
    with _writing(out) as d:
        s = human.report(h.sheets, h.key, d)
    print(human.summary_markdown(s))
    console.summary(f"[raylm] human evaluation report: {storage.join(out, 'human_report.md')}")
    return s
