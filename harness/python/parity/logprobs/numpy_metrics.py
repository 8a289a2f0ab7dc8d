"""Every metric `parity logprobs` reports, written again in plain numpy from the framework
definitions (docs/logprobs.md "Metrics"): the independent baseline the tests compare
the C++ metrics with, and the benchmark's baseline (ci/bench_logprobs).

Δ = lp_train − lp_rollout on scored tokens whose logprobs and Δ are finite; r = clip(Δ, ±20); w = exp(r). Sequences
without a scored finite token are left out of per-sequence means. Names match the C++ ones.
"""

from __future__ import annotations

import numpy as np

from .run_file import LogprobRun

SAFETY_BOUND = 20.0


def logprob_metrics(run: LogprobRun, is_threshold: float = 2.0, veto_threshold: float = 1e-4,
                    catastrophic_threshold: float = 1.0) -> dict[str, float]:
    sequences = len(run.seq_offsets) - 1
    seq = run.sequence_of_token
    train, rollout = np.asarray(run.train, dtype=np.float64), np.asarray(run.rollout, dtype=np.float64)
    scored = run.loss_mask.astype(bool)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(train) & np.isfinite(rollout) & np.isfinite(train - rollout)
    keep = scored & finite
    lt, lr, sid = train[keep], rollout[keep], seq[keep]
    d = lt - lr
    a = np.abs(d)
    r = np.clip(d, -SAFETY_BOUND, SAFETY_BOUND)
    w = np.exp(r)
    n_i = np.bincount(sid, minlength=sequences)
    has = n_i > 0

    def seq_sum(x):
        return np.bincount(sid, weights=x, minlength=sequences)[has]

    def seq_mean(x):
        return seq_sum(x) / n_i[has]

    out: dict[str, float] = {}
    out["abs_diff_seq_mean"] = seq_mean(a).mean()
    out["abs_diff_token_mean"] = a.mean()
    out["abs_diff_median"], out["abs_diff_p90"], out["abs_diff_p99"] = np.percentile(a, [50, 90, 99])
    out["abs_diff_max"] = a.max()
    out["diff_mean"] = d.mean()
    sw, sw2 = seq_sum(w), seq_sum(w * w)
    out["ess_seq_mean"] = (sw * sw / (n_i[has] * np.maximum(sw2, 1e-8))).mean()
    wc = np.clip(w, 1 / is_threshold, is_threshold)
    out["ess_batch"] = 1.0 / np.mean((wc / (wc.mean() + 1e-8)) ** 2)
    out["ess_batch_unclamped"] = 1.0 / np.mean((w / (w.mean() + 1e-8)) ** 2)
    out["kl_k1"] = (lr - lt).mean()
    out["kl_k1_seq_mean"] = seq_mean(lr - lt).mean()
    k3 = np.exp(r) - r - 1
    out["kl_k3"] = k3.mean()
    out["kl_k3_seq_mean"] = seq_mean(k3).mean()
    out["chi2_token"] = np.mean(np.exp(2 * r)) - 1
    out["chi2_seq"] = np.mean(np.exp(2 * np.clip(seq_sum(d), -SAFETY_BOUND, SAFETY_BOUND))) - 1
    mean_lt, mean_lr = seq_mean(lt), seq_mean(lr)
    out["ppl_train"] = np.exp(-mean_lt).mean()
    out["ppl_rollout"] = np.exp(-mean_lr).mean()
    log_ppl_diff = mean_lr - mean_lt
    out["ppl_ratio"] = np.exp(log_ppl_diff).mean()
    out["log_ppl_diff"] = log_ppl_diff.mean()
    out["log_ppl_abs_diff"] = np.abs(log_ppl_diff).mean()
    p = np.abs(np.exp(lt) - np.exp(lr))
    out["prob_diff_mean"] = p.mean()
    out["prob_diff_max"] = p.max()
    out["prob_diff_std"] = p.std(ddof=1) if p.size >= 2 else float("nan")
    clipped = d > np.log(is_threshold)
    out["tis_clip_fraction"] = clipped.mean()
    out["tis_clip_fraction_seq_mean"] = seq_mean(clipped).mean()
    vetoed = d < np.log(veto_threshold)
    out["veto_token_fraction"] = vetoed.mean()
    out["veto_seq_fraction"] = (np.bincount(sid, weights=vetoed, minlength=sequences)[has] > 0).mean()
    out["catastrophic_tokens"] = float(np.count_nonzero(a > catastrophic_threshold))
    out["nonfinite_tokens"] = float(np.count_nonzero(scored & ~finite))
    return {k: float(v) for k, v in out.items()}
