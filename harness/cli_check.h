// `parity check`: flags -> runs -> reports. Returns the process exit code (0 pass, 1 gate failed);
// input and usage errors are thrown (the caller prints one line and exits 2).
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace parity::harness {

struct CheckFlags {
  std::string fixture;
  std::string case_file;
  std::string mode;  // "" = isolated, or the case's modes
  std::string budget;
  std::string precision = "auto";
  std::string weights;
  std::string hooks;
  std::string json_out;
  std::string junit_out;
  bool failures_only = false;
};

CLI::App* add_check_command(CLI::App& app, CheckFlags& flags);
int run_check_command(const CheckFlags& flags);

}  // namespace parity::harness
