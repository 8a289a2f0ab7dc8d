// `parity_bench_logprobs`: times compute_logprob_metrics (every `parity logprobs` metric and the
// catastrophic-token ranking) on a logprob-run file, the file already read. A benchmark, not a
// test: ci/bench_logprobs runs it beside the same metrics in numpy on the same arrays.
//
//   build/parity_bench_logprobs RUN.h5 --repeats 5
//
// Prints one JSON line: {"seconds": [..one per repeat..], "load_seconds": s, "tokens": N,
// "scored_tokens": n, "metrics": {name: value}} (the values let the script check both sides agree).
// Exit codes: 0 done, 2 usage or input error (one line on stderr).
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "logprobs/metrics.h"
#include "logprobs/run.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(const std::string& path, int repeats) {
  auto start = std::chrono::steady_clock::now();
  const parity::harness::LogprobRun run = parity::harness::load_logprob_run(path);
  const double load_seconds = seconds_since(start);
  std::vector<double> seconds;
  parity::harness::LogprobSummary summary;
  for (int r = 0; r < repeats; ++r) {
    start = std::chrono::steady_clock::now();
    summary = parity::harness::compute_logprob_metrics(run, {});
    seconds.push_back(seconds_since(start));
  }
  nlohmann::ordered_json metrics;
  for (const parity::harness::LogprobMetric& m : summary.metrics)
    metrics[m.name] = std::isfinite(m.value) ? nlohmann::json(m.value) : nlohmann::json();
  const nlohmann::ordered_json line = {{"seconds", seconds},
                                       {"load_seconds", load_seconds},
                                       {"tokens", run.tokens()},
                                       {"scored_tokens", summary.scored_tokens},
                                       {"metrics", metrics}};
  fmt::print("{}\n", line.dump());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"parity_bench_logprobs: times every logprob metric on a logprob-run file", "parity_bench_logprobs"};
  std::string path;
  int repeats = 5;
  app.add_option("RUN", path, "logprob-run HDF5 file")->required();
  app.add_option("--repeats", repeats, "timed computations")->check(CLI::Range(1, 1000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "parity_bench_logprobs: error: {} (see --help)\n", e.what());
    return 2;
  }
  try {
    return run(path, repeats);
  } catch (const std::exception& e) {
    fmt::print(stderr, "parity_bench_logprobs: error: {}\n", e.what());
    return 2;
  }
}
