"""parity-dump: write an HDF5 fixture from a tiny random model (--config) or a checkpoint (--model).

Exit codes: 0 written, 2 usage or input error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from . import WEIGHT_MODES, DumpError, dump
from .build import DTYPES, checkpoint_model, random_input_ids, random_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="parity-dump",
        description="Run a transformers model with hooks on every module and write an HDF5 fixture "
        "(format: golden/README.md).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="JSON config (model_type + HF keys): builds a tiny random model")
    source.add_argument("--model", help="local checkpoint folder written by save_pretrained")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random weights (--config) and input ids")
    parser.add_argument("--out", required=True, help="fixture to write (.h5)")
    parser.add_argument("--batch", type=int, default=2, help="random inputs: sequences (default 2)")
    parser.add_argument("--seq-len", type=int, default=16, help="random inputs: tokens per sequence (default 16)")
    parser.add_argument("--ids", help="explicit input ids as JSON, e.g. '[[1,2,3],[4,5,6]]' (replaces --batch/--seq-len)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="run dtype (default float32)")
    parser.add_argument("--layers", help="comma-separated decoder layers to hook, e.g. 0,5,29 (default: all)")
    parser.add_argument("--weights", choices=WEIGHT_MODES, default="auto",
                        help="weights to store: all, hooked (the hooked layers + non-layer modules), none; "
                        "auto = all, or hooked with --layers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def input_ids_from(args: argparse.Namespace, vocab_size: int) -> torch.Tensor:
    if args.ids is not None:
        try:
            rows = json.loads(args.ids)
            ids = torch.tensor(rows, dtype=torch.int64)
        except (json.JSONDecodeError, TypeError, ValueError, RuntimeError):
            raise DumpError("--ids must be a JSON list of equal-length lists of integers") from None
        return ids
    return random_input_ids(args.seed, args.batch, args.seq_len, vocab_size)


def parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise DumpError(f"--layers must be comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        layers = parse_layers(args.layers)
        if args.config:
            model = random_model(args.config, args.seed, args.dtype)
            meta = {"seed": args.seed, "source": f"random:{args.config}"}
        else:
            model = checkpoint_model(args.model, args.dtype)
            meta = {"seed": args.seed, "source": f"checkpoint:{args.model}"}
        ids = input_ids_from(args, model.config.get_text_config().vocab_size)
        result = dump(model, ids, args.out, layers=layers, weights=args.weights, meta=meta,
                      progress=False if args.quiet else None)
    except DumpError as error:
        print(f"parity-dump: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.path}: {result.hooks} hooks, {result.weights} weights, layers {result.hooked_layers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
