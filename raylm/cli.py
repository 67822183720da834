"""`raylm <command> CONFIG [--set key=value ...] [--address ADDR] [--overwrite]`.

COMMANDS is one table: name -> (help, "module:function"). Imports are lazy, so `raylm --help`
answers without importing torch or ray. Every command loads the same strict YAML
(raylm/root.py), saves the resolved config next to its outputs, and exits with
- 0 on success;
- 2 on a config or input error: one line, no traceback, whether the error was raised here or
  inside a Ray task or training worker (raylm/errors.py);
- 1 on anything else: one line plus the path of a file holding the full traceback;
- 130 / 143 after Ctrl-C / SIGTERM: one line saying where the run stopped; rerunning the same
  command resumes (raylm/interrupt.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ingest, clean and tokenize text into shards (Ray Data)", "raylm.commands:data"),
    "train": ("pretrain a GPT on the shards (Ray Train)", "raylm.commands:train"),
    "finetune": ("continued pretraining or a classification head from a checkpoint (Ray Train)",
                 "raylm.commands:finetune"),
    "eval": ("evaluate the newest checkpoint: a language model (perplexity, bits per byte, samples) or a "
             "classifier (accuracy, P/R/F1)", "raylm.model_commands:evaluate"),
    "generate": ("text from a checkpoint: one prompt, a file of prompts, or interactively",
                 "raylm.model_commands:generate"),
    "export": ("write a checkpoint in the Hugging Face layout (transformers loads it)", "raylm.model_commands:export"),
    "tune": ("sweep hyperparameters with early stopping (Ray Tune)", "raylm.commands:tune"),
    "rate": ("read filled human-evaluation sheets: mean scores, rater agreement", "raylm.model_commands:rate"),
    "run": ("data -> train -> eval from one config", "raylm.commands:run_all"),
    "check": ("validate a config and print it resolved (no Ray)", "raylm.commands:check"),
}
WRITES = ("data", "train", "finetune", "tune", "run")  # commands whose output folders --overwrite clears
# Arguments a single command adds to the common ones (CONFIG, --set, --address).
EXTRA: dict[str, list[tuple[tuple, dict]]] = {
    "tune": [(("--resume",), {"action": "store_true", "help": "continue an interrupted sweep"})],
    "generate": [
        (("--checkpoint",), {"help": "checkpoint folder (default: the run's newest language model)"}),
        (("--prompt",), {"help": "one prompt; the completion streams to the terminal"}),
        (("--prompts",), {"metavar": "FILE", "help": "a file of prompts (one a line, or jsonl with \"prompt\")"}),
        (("--interactive",), {"action": "store_true", "help": "prompt, generate, repeat"}),
        (("--output",), {"metavar": "FILE", "help": "jsonl of completions for --prompts "
                                                   "(default <out>/generate/completions.jsonl)"}),
        (("--max-new-tokens",), {"type": int, "help": "tokens to add at most (default eval.sample_tokens)"}),
        (("--temperature",), {"type": float, "help": "0 = greedy (default eval.temperature)"}),
        (("--top-k",), {"type": int, "help": "keep the k most likely tokens; 0 = off (default eval.top_k)"}),
        (("--top-p",), {"type": float, "help": "nucleus mass; 1 = off (default eval.top_p)"}),
        (("--seed",), {"type": int, "help": "sampling seed (default: the config's seed)"}),
    ],
    "export": [
        (("--checkpoint",), {"help": "checkpoint folder (default: the run's newest)"}),
        (("--format",), {"choices": ["hf"], "default": "hf", "help": "hf: the Hugging Face layout"}),
        (("--out",), {"dest": "export_out", "required": True, "metavar": "DIR", "help": "folder to write"}),
    ],
}


def build_parser() -> argparse.ArgumentParser:
    from raylm import __version__

    p = argparse.ArgumentParser(prog="raylm", description="Web text to a trained, tuned, evaluated LM on Ray.")
    p.add_argument("--version", action="version", version=f"raylm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, _) in COMMANDS.items():
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("config", help="YAML config (see configs/)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any key, e.g. --set train.optim.lr=1e-3 (repeatable)")
        s.add_argument("--address", default=None,
                       help="Ray cluster to join (default: $RAY_ADDRESS, else start Ray locally)")
        noise = s.add_mutually_exclusive_group()
        noise.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=0, default=1,
                           help="print only errors and the final summary")
        noise.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=2,
                           help="also print Ray's logs, Ray Data's operator progress and every worker's output")
        if name in WRITES:
            s.add_argument("--overwrite", action="store_true",
                           help="replace output that another config wrote (it is deleted first)")
        for a, kw in EXTRA.get(name, []):
            s.add_argument(*a, **kw)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.command:
        build_parser().print_help()
        return 2
    from raylm import console, errors, interrupt, provenance

    console.set_level(args.verbosity)
    provenance.set_command(list(argv) if argv is not None else sys.argv[1:])
    logging.basicConfig(level=os.environ.get("RAYLM_LOG_LEVEL", "INFO" if console.verbose() else "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)

    interrupt.reset()
    previous = interrupt.install()
    module, fn = COMMANDS[args.command][1].split(":")
    name = f"raylm {args.command}"
    try:
        getattr(__import__(module, fromlist=[fn]), fn)(args)
    except interrupt.Interrupted as e:
        print(f"{name}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"{name}: interrupted; rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- every error leaves as one line (errors.py)
        cause = errors.root_cause(e)
        if cause.is_input:
            print(f"{name}: error: {cause.message}", file=sys.stderr)
            return 2
        log = errors.write_log(e, errors.log_path(args.command, time.strftime("%Y%m%d-%H%M%S")))
        where = f"full traceback: {log}" if log else "no traceback file could be written"
        print(f"{name}: error: {cause.kind}: {cause.message[:400]} ({where})", file=sys.stderr)
        return 1
    finally:
        interrupt.restore(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
