// `parity logprobs`: a logprob run (a run file, two fixtures, or a fixture against the C++
// reference) -> metrics, catastrophic tokens, gate -> reports. Returns the exit code (0 pass, 1
// gate failed); input and usage errors are thrown (the caller prints one line and exits 2).
#pragma once

#include <filesystem>
#include <string>

#include "cli/cli_util.h"

namespace CLI {
class App;
}

namespace parity::harness {

struct LogprobsFlags {
  std::string run, train, rollout, case_file, budget, tokenizer, weights;
  std::string precision = "auto";
  int64_t top_k = 5;
  double is_threshold = 0, veto_threshold = 0, catastrophic_threshold = 0;
  int64_t top = 0, context = 0;
  std::string json_out, junit_out, html_out;
  std::string baseline, write_baseline;
};

CLI::App* add_logprobs_command(CLI::App& app, LogprobsFlags& flags);
int run_logprobs_command(const CLI::App& command, const LogprobsFlags& flags);

}  // namespace parity::harness
