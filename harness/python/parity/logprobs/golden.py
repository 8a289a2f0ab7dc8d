"""The golden logprob runs: HF float32 (train) vs HF bfloat16 (rollout) of golden models, scoring
real text tokenized by a real tokenizer.json, as an RL trainer and a bf16 rollout engine would.

    python -m parity.logprobs.golden --golden golden [--only FILE] [--out DIR]     # ci/regen_golden runs it

golden/tokenizer/tokenizer.json is a BPE tokenizer trained (by Hugging Face `tokenizers`) on
golden/tokenizer/corpus.txt with the golden models' vocabulary of 128; each corpus line is one
sequence: <bos> + its tokens (at most max_tokens), the first third a prompt (loss_mask 0), the
rest a response (loss_mask 1). Entries: [[logprob_run]] in golden/fixtures.toml.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from ..dump.build import random_model
from ..dump.golden import golden_arguments
from .run_file import LogprobRun, write_run

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0..3 (Gemma-4's pad 0, eos 1, bos 2)
VOCAB_SIZE = 128


@dataclass(frozen=True)
class GoldenLogprobRun:
    file: str    # relative to golden/
    config: str  # relative to golden/
    seed: int
    top_k: int
    max_tokens: int


def load_manifest(path: Path) -> list[GoldenLogprobRun]:
    """The [[logprob_run]] entries of golden/fixtures.toml."""
    with open(path, "rb") as handle:
        return [GoldenLogprobRun(**entry) for entry in tomllib.load(handle).get("logprob_run", [])]


def train_tokenizer(corpus: Path, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A byte-free BPE (Metaspace pieces, as SentencePiece writes them) small enough for vocab 128.
    Its decoder keeps a piece's leading space ("▁the" -> " the"), so one token decoded alone
    shows where a word starts."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(corpus.read_text().splitlines(), trainer)
    return tokenizer


def sequences(tokenizer: Tokenizer, corpus: Path, max_tokens: int) -> tuple[list[list[int]], list[list[bool]]]:
    bos = tokenizer.token_to_id("<bos>")
    ids, masks = [], []
    for line in corpus.read_text().splitlines():
        tokens = [bos] + tokenizer.encode(line).ids[: max_tokens - 1]
        prompt = max(1, len(tokens) // 3)  # the first token is never scored: it has no logprob
        ids.append(tokens)
        masks.append([i >= prompt for i in range(len(tokens))])
    return ids, masks


def score(model: torch.nn.Module, tokens: list[int], top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """logprob of every token (0 for the first) and the top-k of the distribution it was drawn
    from, by log_softmax in float32 of the model's logits (as /outputs/logprobs is made)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    ids = torch.tensor(tokens)
    own = torch.zeros(len(tokens), dtype=torch.float32)
    own[1:] = logprobs[:-1].gather(-1, ids[1:, None])[:, 0]
    top = torch.zeros(len(tokens), top_k, dtype=torch.float32), torch.zeros(len(tokens), top_k, dtype=torch.int64)
    values, indices = logprobs[:-1].topk(top_k, dim=-1)
    top[0][1:], top[1][1:] = values, indices
    return own.numpy(), top[1].numpy(), top[0].numpy()


def make(entry: GoldenLogprobRun, out_dir: Path, golden_dir: Path) -> Path:
    tokenizer_path = golden_dir / "tokenizer" / "tokenizer.json"
    tokens, masks = sequences(Tokenizer.from_file(str(tokenizer_path)), golden_dir / "tokenizer" / "corpus.txt",
                              entry.max_tokens)
    sides = {}
    for side, dtype in (("train", "float32"), ("rollout", "bfloat16")):
        model = random_model(golden_dir / entry.config, entry.seed, dtype)
        sides[side] = [score(model, t, entry.top_k) for t in tokens]
    run = LogprobRun.from_sequences(tokens, [s[0] for s in sides["train"]], [s[0] for s in sides["rollout"]], masks)
    for side in ("train", "rollout"):
        table = (np.concatenate([s[1] for s in sides[side]]), np.concatenate([s[2] for s in sides[side]]))
        setattr(run, f"{side}_top_k", table)
    run.train, run.rollout = run.train.astype(np.float32), run.rollout.astype(np.float32)
    source = f"random:golden/{entry.config} seed {entry.seed}"
    out = out_dir / entry.file
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_run(out, run, train_source=f"HF float32 ({source})", rollout_source=f"HF bfloat16 ({source})",
                     tokenizer=tokenizer_path, meta={"seed": entry.seed, "config": f"golden/{entry.config}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate golden/tokenizer and the golden logprob runs.")
    parser.add_argument("--only", help="regenerate only this run (its file, relative to golden/)")
    golden_arguments(parser, "output folder (default: the --golden folder)")
    args = parser.parse_args(argv)
    out = args.out or args.golden
    manifest = args.golden / "fixtures.toml"
    entries = [e for e in load_manifest(manifest) if args.only in (None, e.file)]
    if not entries:
        print(f"regen: error: no logprob run named {args.only!r} in {manifest}", file=sys.stderr)
        return 2
    if args.only is None:
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        train_tokenizer(args.golden / "tokenizer" / "corpus.txt").save(str(out / "tokenizer" / "tokenizer.json"))
        print(f"wrote {out / 'tokenizer' / 'tokenizer.json'}")
    for entry in entries:
        path = make(entry, out, args.golden)
        print(f"wrote {path} ({path.stat().st_size / 1e3:.1f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
