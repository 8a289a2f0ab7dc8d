// `parity compare BASE TARGET`: two dumps of the same model and inputs, hook by hook (compare.h),
// with check's reports and exit codes (0 pass, 1 gate failed; input and usage errors are thrown:
// the caller prints one line and exits 2).
#pragma once

#include <string>

#include "cli/cli_util.h"

namespace CLI {
class App;
}

namespace parity::harness {

struct CompareFlags {
  std::string base, target;
  std::string budget;
  std::string weights;
  std::string hooks;
  std::string json_out, junit_out, html_out;
  std::string baseline, write_baseline;
  bool no_reference = false;
  bool grad = false;
  bool failures_only = false;
};

CLI::App* add_compare_command(CLI::App& app, CompareFlags& flags);
int run_compare_command(const CompareFlags& flags);

}  // namespace parity::harness
