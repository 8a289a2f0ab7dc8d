"""The golden logprob runs and tokenizer regenerate (golden/fixtures.toml [[logprob_run]]).

The tokenizer and the token ids, offsets and masks must come back identical (BPE training and
encoding are deterministic); logprobs may move as the golden fixtures' tensors may
(harness/python/tests/dump/test_golden_regen.py: fp32 5e-5, bf16 0.1 relative L2).
"""

import numpy as np
import pytest

from helpers import GOLDEN
from parity.logprobs import read_run
from parity.logprobs.golden import load_manifest, make, train_tokenizer

TOKENIZER_DIR = GOLDEN / "tokenizer"


def rel_l2(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


def test_the_golden_tokenizer_regenerates_identically(tmp_path):
    train_tokenizer(TOKENIZER_DIR / "corpus.txt").save(str(tmp_path / "tokenizer.json"))
    assert (tmp_path / "tokenizer.json").read_text() == (TOKENIZER_DIR / "tokenizer.json").read_text()


@pytest.mark.parametrize("entry", load_manifest(GOLDEN / "fixtures.toml"), ids=lambda e: e.file)
def test_a_golden_logprob_run_regenerates_within_the_fixtures_spread(tmp_path, entry):
    fresh, _ = read_run(make(entry, tmp_path, GOLDEN))
    committed, _ = read_run(GOLDEN / entry.file)
    for name in ("input_ids", "seq_offsets", "loss_mask"):
        assert np.array_equal(getattr(fresh, name), getattr(committed, name)), name
    scored = committed.loss_mask
    assert rel_l2(fresh.train[scored], committed.train[scored]) <= 5e-5
    assert rel_l2(fresh.rollout[scored], committed.rollout[scored]) <= 0.1
