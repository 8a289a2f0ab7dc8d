// A logprob run: the tokens of B sequences scored by two engines, "train" (the training engine's
// recompute, e.g. Megatron or HF fp32) and "rollout" (the inference engine, e.g. SGLang or HF bf16).
// Read from a logprob-run HDF5 file (golden/README.md "Logprob run format") or derived from two
// model fixtures of the same inputs (from_fixtures.h). Tokens are packed: sequence i is
// tokens [seq_offsets[i], seq_offsets[i + 1]); logprob t is log p(token t | the tokens before it
// in its sequence), so the first token of a sequence has none and must not be scored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace parity::harness {

// One side's K most likely next tokens at every position, [N, K] row-major, descending.
struct TopKTable {
  int64_t k = 0;
  std::vector<int64_t> ids;
  std::vector<double> logprobs;
};

struct LogprobRun {
  std::string source;                 // the file, or how the run was derived
  std::string train_source, rollout_source;
  std::vector<int64_t> input_ids;     // [N]
  std::vector<int64_t> seq_offsets;   // [B + 1]: 0, ..., N
  std::vector<uint8_t> loss_mask;     // [N]: 1 = scored
  std::vector<double> train, rollout; // [N]; values at unscored tokens are ignored
  std::optional<TopKTable> train_top_k, rollout_top_k;
  std::optional<std::filesystem::path> tokenizer;  // tokenizer.json the producer named, if any

  int64_t tokens() const { return static_cast<int64_t>(input_ids.size()); }
  int64_t sequences() const { return static_cast<int64_t>(seq_offsets.size()) - 1; }
};

// Reads and validates a logprob-run file; InputError (exit 2) naming the file and dataset.
LogprobRun load_logprob_run(const std::filesystem::path& path);

// The structural rules every run obeys, however it was made: equal lengths, offsets 0..N strictly
// increasing, ids >= 0, a mask of 0/1 that scores no sequence's first token and at least one token,
// top-k tables of [N, K]. InputError naming `run.source` and the first offending element.
void validate(const LogprobRun& run);

}  // namespace parity::harness
