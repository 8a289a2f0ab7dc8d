// Fuzz target: the logprob-run reader and the metrics over what it accepts. The bytes are a
// logprob-run HDF5 file (golden/README.md "Logprob run format"): read and validated, then every
// metric computed and gated on the built-in budget, as `parity logprobs` does, with small chunks
// so the parallel pass splits even a short run.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "logprobs/gate.h"
#include "logprobs/metrics.h"
#include "logprobs/run.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace parity::harness;
  return parity::fuzz::run_one([&] {
    const LogprobRun run = load_logprob_run(parity::fuzz::scratch().write("run.h5", parity::fuzz::as_bytes(data, size)));
    LogprobOptions options;
    options.chunk_tokens = 7;
    (void)compute_logprob_metrics(run, options);
    (void)gate_logprobs(run, builtin_logprob_budget());
  });
}
