"""`raylm <command> CONFIG [--set key=value ...] [--address ADDR]`.

COMMANDS is one table: name -> (help, "module:function"). Imports are lazy, so `raylm --help`
answers without importing torch or ray. Every command loads the same strict YAML
(raylm/root.py), saves the resolved config next to its outputs, and returns 0 on success,
2 on a config or input error (one clear line, no traceback), 1 on anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("ingest, clean and tokenize text into shards (Ray Data)", "raylm.commands:data"),
    "train": ("pretrain a GPT on the shards (Ray Train)", "raylm.commands:train"),
    "finetune": ("continued pretraining or a classification head from a checkpoint (Ray Train)",
                 "raylm.commands:finetune"),
    "eval": ("validation loss, perplexity, bits per byte and samples", "raylm.commands:evaluate"),
    "tune": ("sweep hyperparameters with early stopping (Ray Tune)", "raylm.commands:tune"),
    "rate": ("read filled human-evaluation sheets: mean scores, rater agreement", "raylm.commands:rate"),
    "run": ("data -> train -> eval from one config", "raylm.commands:run_all"),
    "check": ("validate a config and print it resolved (no Ray)", "raylm.commands:check"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raylm", description="Web text to a trained, tuned, evaluated LM on Ray.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, _) in COMMANDS.items():
        s = sub.add_parser(name, help=help_, description=help_)
        s.add_argument("config", help="YAML config (see configs/)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any key, e.g. --set train.optim.lr=1e-3 (repeatable)")
        s.add_argument("--address", default=None,
                       help="Ray cluster to join (default: $RAY_ADDRESS, else start Ray locally)")
        if name == "tune":
            s.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.command:
        build_parser().print_help()
        return 2
    logging.basicConfig(level=os.environ.get("RAYLM_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from raylm.config import ConfigError

    module, fn = COMMANDS[args.command][1].split(":")
    func = getattr(__import__(module, fromlist=[fn]), fn)
    try:
        func(args)
    except (ConfigError, FileNotFoundError) as e:
        print(f"raylm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad input found before or during work: one clear line
        print(f"raylm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
