// Where a logprob run comes from: a run file (golden/README.md "Logprob run format"), or a train
// and a rollout side, each a model fixture or the C++ reference's chained forward.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace parity::harness {

// A side that is the C++ reference instead of a fixture.
inline constexpr const char* kReferenceSide = "reference";

struct LogprobSources {
  std::optional<std::filesystem::path> run;
  std::optional<std::string> train, rollout;  // fixture paths or kReferenceSide
};

// InputError unless exactly one of run or (train and rollout) is given, at most one side the reference.
void check_sources(const LogprobSources& sources, const std::string& where);

}  // namespace parity::harness
