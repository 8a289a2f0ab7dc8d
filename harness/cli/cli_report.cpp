#include "cli/cli_report.h"

#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/cli_util.h"
#include "html_report.h"

namespace parity::harness {

CLI::App* add_report_command(CLI::App& app, ReportFlags& f) {
  CLI::App* cmd = app.add_subcommand("report", "render saved JSON results (check, logprobs or a multi-case summary) as HTML");
  cmd->add_option("RESULTS", f.results, "JSON written by --json, or a multi-case run's summary.json")->required();
  cmd->add_option("-o,--output", f.html_out, "the HTML file to write")->required();
  return cmd;
}

int run_report_command(const ReportFlags& f) {
  std::ifstream in(f.results, std::ios::binary);
  if (!in) throw InputError(fmt::format("[report {}] cannot open the file", f.results));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json results;
  try {
    results = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: a number beyond double
    throw InputError(fmt::format("[report {}] not JSON: {}", f.results, e.what()));
  }
  const std::string html = reports::html_report(results, f.results);  // rendered before the output is touched
  std::unique_ptr<AtomicFile> out = open_report(f.html_out, "--output");
  write_report(out.get(), html);
  fmt::print("wrote {}\n", f.html_out);
  return 0;
}

}  // namespace parity::harness
