"""parity.logprobs.numpy_metrics on hand-made runs with known answers (the C++ metrics are checked
against this module in harness/logprobs/logprobs_test.py, so it must be right on its own)."""

import math

import numpy as np

from parity.logprobs import LogprobRun
from parity.logprobs.numpy_metrics import logprob_metrics


def run_with(delta: float) -> LogprobRun:
    """Two sequences (5 and 3 tokens, the first of each unscored), logprobs -2, one token shifted."""
    train = [[-2.0] * 5, [-2.0] * 3]
    train[0][2] += delta
    return LogprobRun.from_sequences([[0] * 5, [0] * 3], train, [[-2.0] * 5, [-2.0] * 3],
                                     [[False] + [True] * 4, [False] + [True] * 2])


def test_identical_sides():
    m = run_with(0.0)
    out = logprob_metrics(m)
    assert out["abs_diff_seq_mean"] == 0 and out["kl_k3"] == 0 and out["chi2_token"] == 0
    assert out["ess_seq_mean"] == 1 and math.isclose(out["ess_batch"], 1, rel_tol=1e-7)


def test_one_shifted_token():
    d = 0.5
    w = math.exp(d)
    out = logprob_metrics(run_with(d))
    assert math.isclose(out["abs_diff_seq_mean"], (d / 4) / 2)
    assert math.isclose(out["abs_diff_token_mean"], d / 6)
    assert math.isclose(out["ess_seq_mean"], ((w + 3) ** 2 / (4 * (w * w + 3)) + 1) / 2)
    assert math.isclose(out["kl_k3"], (w - d - 1) / 6)
    assert math.isclose(out["chi2_seq"], (w * w + 1) / 2 - 1)
    assert math.isclose(out["abs_diff_p99"], 0.95 * d)
    assert out["catastrophic_tokens"] == 0 and out["tis_clip_fraction"] == 0


def test_non_finite_tokens_are_counted_not_used():
    run = run_with(0.0)
    run.rollout[2] = np.nan
    out = logprob_metrics(run)
    assert out["nonfinite_tokens"] == 1 and out["abs_diff_max"] == 0
