// `parity check`: flags -> runs -> reports. Returns the process exit code (0 pass, 1 gate failed);
// input and usage errors are thrown (the caller prints one line and exits 2). FIXTURE may be a
// directory of cases: every case in it is run (cli_suite.h).
#pragma once

#include <string>

#include "cli/cli_util.h"

namespace CLI {
class App;
}

namespace parity::harness {

struct CheckFlags {
  std::string fixture;
  std::string case_file;
  std::string mode;  // "" = isolated, or the case's modes
  bool grad = false;  // --grad: add each mode's gradient mode
  std::string budget;
  std::string precision = "auto";
  std::string weights;
  std::string hooks;
  std::string json_out;
  std::string junit_out;
  std::string html_out;
  std::string baseline;        // "" = the case's baseline, if it names one
  std::string write_baseline;  // accept this run as a baseline
  std::string out_dir;         // a directory of cases: where the reports go
  bool write_baselines = false;  // a directory of cases: accept each case's run as its baseline
  bool failures_only = false;
};

CLI::App* add_check_command(CLI::App& app, CheckFlags& flags);
int run_check_command(const CLI::App& command, const CheckFlags& flags);

}  // namespace parity::harness
