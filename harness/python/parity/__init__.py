"""parity: numerical parity harness for Gemma-4 and OLMoE (see README.md).

The C++ harness in-process (the extension parity._parity, built by `pip install .`):

    parity.Fixture(path)                       read a fixture: meta, config, names(group), read(group, name)
    parity.compare_tensors(ref, hf)            check's per-hook metrics (rel_l2, max_abs, cosine, worst, ...)
    parity.Budget.load(path)                   tolerance budgets; .limit_for(mode, hook)
    parity.logprob_metrics(train, rollout, loss_mask)   logprob diffs, ESS, KL, catastrophic tokens of a batch
    parity.gate_logprobs(..., budget=path)     the same gated: `parity logprobs --json` as a dict
    parity.replay(config, module, inputs, weights)      one reference module on your tensors
    parity.replay_backward(config, module, inputs, grads, weights)   its backward from your output gradients
    parity.forward(config, input_ids, weights) the reference end to end
    parity.forward_backward(config, input_ids, weights, loss, ...)   and its backward from a loss
    parity.check / compare / diagnose(path)    the CLI's gates, as their --json dicts
    parity.check_case(case_file)               `parity check --case` (cases, checkpoints, baselines, [expect])
    parity.grad_audit(dump, target=None)       `parity grad-audit --json`: which parameters learn on each side
    parity.html_report(result)                 the self-contained HTML page of a result dict
    parity.known_bugs()                        the known-bug registry (references/models/known_bugs.toml) as dicts

Errors: a wrong argument type or array dtype is a TypeError naming the argument; any other mistake
of the caller (a bad config, path, name, shape, mask value or token id) parity.InputError (a
ValueError, the CLI's exit 2) naming it; parity.Error (a RuntimeError) only a failure that is not
the caller's. Long computations release the GIL (every argument is converted before).

parity.dump writes HDF5 fixtures from transformers models; parity.logprobs writes logprob runs;
parity.zoo plants known bugs into HF models.
"""

from ._parity import (  # noqa: F401  (the public API)
    Budget,
    Error,
    Fixture,
    InputError,
    Limit,
    check,
    check_case,
    compare,
    compare_tensors,
    diagnose,
    forward,
    grad_audit,
    forward_backward,
    gate_logprobs,
    html_report,
    known_bugs,
    logprob_metrics,
    logprobs_report,
    modules,
    replay,
    replay_backward,
)

__version__ = "0.1.0"
