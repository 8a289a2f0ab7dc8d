// `parity report RESULTS.json -o OUT.html`: the HTML report of saved JSON results (a check, a
// logprob run, or a multi-case summary). Input errors are thrown (exit 2).
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace parity::harness {

struct ReportFlags {
  std::string results;
  std::string html_out;
};

CLI::App* add_report_command(CLI::App& app, ReportFlags& flags);
int run_report_command(const ReportFlags& flags);

}  // namespace parity::harness
