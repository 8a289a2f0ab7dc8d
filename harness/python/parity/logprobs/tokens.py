"""Token ids -> text with a real tokenizer.json, for `parity logprobs --tokenizer`.

The C++ CLI has no packaged binding for Hugging Face's `tokenizers`, so it runs this module
(harness/logprobs/token_text.cpp):

    python -m parity.logprobs.tokens TOKENIZER_JSON IDS_JSON OUT_JSON

IDS_JSON holds a list of ids; OUT_JSON gets {"vocab_size": V, "texts": {"<id>": decode([id])}} for
the ids inside the vocabulary (the caller reports the others). Errors: one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def decode(tokenizer_path: Path, ids: list[int]) -> dict:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    texts = {str(i): tokenizer.decode([i], skip_special_tokens=False) for i in ids if 0 <= i < vocab_size}
    return {"vocab_size": vocab_size, "texts": texts}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m parity.logprobs.tokens TOKENIZER_JSON IDS_JSON OUT_JSON", file=sys.stderr)
        return 2
    tokenizer_path, ids_path, out_path = (Path(a) for a in args)
    try:
        ids = json.loads(ids_path.read_text())
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ValueError(f"{ids_path} must hold a list of integers")
        result = decode(tokenizer_path, ids)
    except Exception as e:  # any failure is one line for the C++ caller's message
        print(f"cannot decode with {tokenizer_path}: {type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 2
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
