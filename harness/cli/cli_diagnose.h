// `parity diagnose`: flags -> diagnosis (diagnose.h) -> reports. Exit code: 0 when the target
// matches HF (or, with an expected diagnosis, when it is the one found), 1 otherwise; input and
// usage errors are thrown (exit 2).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace parity::harness {

struct DiagnoseFlags {
  std::string fixture;
  std::string case_file;
  std::string budget;
  std::string precision = "auto";
  std::string weights;
  std::vector<std::string> variants;  // names to try; empty = every one of the family
  std::string expect;                 // "hf" or a variant name
  std::string json_out;
  bool list = false;
};

CLI::App* add_diagnose_command(CLI::App& app, DiagnoseFlags& flags);
int run_diagnose_command(const DiagnoseFlags& flags);

}  // namespace parity::harness
