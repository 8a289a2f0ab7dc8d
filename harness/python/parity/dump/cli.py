"""parity-dump: write an HDF5 fixture from a tiny random model (--config) or a checkpoint (--model).

Exit codes: 0 written, 2 usage or input error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import transformers

from . import WEIGHT_MODES, dump
from .grad import LOSSES
from .build import DTYPES, checkpoint_model, random_input_ids, random_model
from .errors import DumpError

MAX_SEED = 2**63 - 2  # torch.Generator seeds are 64-bit; inputs use seed + 1


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def seed_type(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed must be in [0, {MAX_SEED}]")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog="parity-dump",
        description="Run a transformers model with hooks on every module and write an HDF5 fixture "
        "(format: golden/README.md).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="JSON config (model_type + HF keys): builds a tiny random model")
    source.add_argument("--model", help="local checkpoint folder written by save_pretrained")
    parser.add_argument("--seed", type=seed_type, default=0, help="seeds the random weights (--config) and input ids")
    parser.add_argument("--out", required=True, help="fixture to write (.h5)")
    parser.add_argument("--batch", type=int, default=2, help="random inputs: sequences (default 2)")
    parser.add_argument("--seq-len", type=int, default=16, help="random inputs: tokens per sequence (default 16)")
    parser.add_argument("--ids", help="explicit input ids as JSON, e.g. '[[1,2,3],[4,5,6]]' (replaces --batch/--seq-len)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="run dtype (default float32)")
    parser.add_argument("--layers", help="comma-separated decoder layers to hook, e.g. 0,5,29 (default: all)")
    parser.add_argument("--weights", choices=WEIGHT_MODES, default="auto",
                        help="weights to store: all, hooked (the hooked layers + non-layer modules), none; "
                        "auto = all, or hooked with --layers")
    parser.add_argument("--grad", choices=sorted(LOSSES),
                        help="also a backward from this loss: every parameter's and hooked module's gradient "
                        "(fixture format v2)")
    parser.add_argument("--loss-weights", help="with --grad logprob_sum: a .npy of [batch, seq_len - 1] float weights "
                        "per scored next token (e.g. advantages); default: the attention mask")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def input_ids_from(args: argparse.Namespace, vocab_size: int) -> torch.Tensor:
    if args.ids is not None:
        try:
            rows = json.loads(args.ids)
        except json.JSONDecodeError:
            rows = None
        rectangular = isinstance(rows, list) and rows and all(isinstance(r, list) and len(r) == len(rows[0]) for r in rows)
        # bool is an int in Python; 1.7 would be truncated by torch.tensor: refuse both.
        if not rectangular or not all(type(i) is int for r in rows for i in r):
            raise DumpError("--ids must be a JSON list of equal-length lists of integers")
        return torch.tensor(rows, dtype=torch.int64)
    return random_input_ids(args.seed, args.batch, args.seq_len, vocab_size)


def load_loss_weights(path: str | None) -> torch.Tensor | None:
    if path is None:
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DumpError(f"--loss-weights {path}: not a readable .npy file ({error})") from None
    if not np.issubdtype(array.dtype, np.floating):
        raise DumpError(f"--loss-weights {path}: dtype {array.dtype}, expected a float array")
    return torch.from_numpy(array.astype(np.float32))


def parse_layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise DumpError(f"--layers must be comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The dumper reports what matters in one line; HF's loading tables would bury it.
    transformers.logging.set_verbosity_error()
    if args.quiet:
        transformers.logging.disable_progress_bar()
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
                      progress=False if args.quiet else None, grad=args.grad,
                      loss_weights=load_loss_weights(args.loss_weights))
    except DumpError as error:
        print(f"parity-dump: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # never a traceback: a model or file we did not foresee
        first_line = (str(error).splitlines() or [""])[0]
        print(f"parity-dump: error: unexpected {type(error).__name__}: {first_line}", file=sys.stderr)
        return 2
    grads = f", {result.gradients} gradients ({args.grad})" if args.grad else ""
    print(f"wrote {result.path}: {result.hooks} hooks, {result.weights} weights{grads}, layers {result.hooked_layers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
