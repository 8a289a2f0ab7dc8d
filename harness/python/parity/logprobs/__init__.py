"""parity.logprobs: train-vs-inference logprob runs in Python.

    from parity.logprobs import LogprobRun, write_run
    run = LogprobRun.from_sequences(token_ids, train_logprobs, rollout_logprobs, loss_masks)
    write_run("run.h5", run, train_source="megatron", rollout_source="sglang")
    # then: build/parity logprobs run.h5 --tokenizer tokenizer.json

The run format is documented in golden/README.md ("Logprob run format"); `numpy_metrics` holds the
plain numpy definitions of every metric `parity logprobs` reports (the tests' and the benchmark's
independent baseline).
"""

from .run_file import LogprobRun, read_run, write_run

__all__ = ["LogprobRun", "read_run", "write_run"]
