// A logprob case (cases/logprobs/*.toml): what CI gates for train-vs-inference logprobs.
//   run = "../../golden/logprob_runs/x.h5"    a logprob-run file (golden/README.md), or
//   train = "a.h5"                            two model fixtures of the same inputs; "reference"
//   rollout = "b.h5"                          on one side: the C++ reference's chained forward
//   tokenizer = "../../golden/tokenizer/tokenizer.json"    optional
//   baseline = "../../golden/baselines/logprobs/x.json"    optional: gate drift from an accepted run
//   [bands] ...                               optional: the baseline bands (baseline.h)
//   [logprobs] ...                            the budget (gate.h)
// Paths are relative to the case file.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "logprobs/gate.h"

namespace parity::harness {

// A side that is the C++ reference instead of a fixture.
inline constexpr const char* kReferenceSide = "reference";

// Where a run comes from: a run file, or a train and a rollout (fixture paths or kReferenceSide).
struct LogprobSources {
  std::optional<std::filesystem::path> run;
  std::optional<std::string> train, rollout;
};

struct LogprobCase {
  std::filesystem::path path;
  LogprobSources sources;
  std::optional<std::filesystem::path> tokenizer;
  std::optional<std::filesystem::path> baseline;
  LogprobBudget budget;
};

LogprobCase load_logprob_case(const std::filesystem::path& path);  // InputError on anything malformed

// InputError unless exactly one of run or (train and rollout) is given, at most one side the reference.
void check_sources(const LogprobSources& sources, const std::string& where);

}  // namespace parity::harness
