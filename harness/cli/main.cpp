// `parity`: the command-line entry point. Subcommands parse flags and call the harness library;
// nothing is computed here. Exit codes: 0 pass, 1 gate failed, 2 usage or input error.
#include <algorithm>
#include <cstdio>
#include <new>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/cli_check.h"
#include "cli/cli_compare.h"
#include "cli/cli_diagnose.h"
#include "cli/cli_grad_audit.h"
#include "cli/cli_logprobs.h"
#include "cli/cli_report.h"
#include "io/fixture.h"
#include "io/inspect.h"
#include "report_util.h"

namespace {

constexpr int kExitUsageOrInput = 2;

// Errors are one line on stderr, with nothing foreign reaching the terminal raw.
void print_error(const std::string& message) {
  std::string line = parity::reports::terminal_safe(message);
  std::replace(line.begin(), line.end(), '\n', ' ');
  fmt::print(stderr, "parity: error: {}\n", line);
}

int run_inspect(const std::string& path) {
  parity::harness::Fixture fixture(path);
  fmt::print("{}", parity::reports::terminal_safe(parity::harness::inspect_text(fixture)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"parity: numerical parity harness for Gemma-4 and OLMoE (see README.md)", "parity"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "parity 0.1.0");

  std::string fixture_path;
  CLI::App* inspect = app.add_subcommand("inspect", "print a fixture's meta, config summary, weights and hooks");
  inspect->add_option("FIXTURE", fixture_path, "HDF5 fixture (format: golden/README.md)")->required();
  parity::harness::CheckFlags check_flags;
  CLI::App* check = parity::harness::add_check_command(app, check_flags);
  parity::harness::CompareFlags compare_flags;
  CLI::App* compare = parity::harness::add_compare_command(app, compare_flags);
  parity::harness::LogprobsFlags logprobs_flags;
  CLI::App* logprobs = parity::harness::add_logprobs_command(app, logprobs_flags);
  parity::harness::ReportFlags report_flags;
  CLI::App* report = parity::harness::add_report_command(app, report_flags);
  parity::harness::DiagnoseFlags diagnose_flags;
  CLI::App* diagnose = parity::harness::add_diagnose_command(app, diagnose_flags);
  parity::harness::GradAuditFlags audit_flags;
  CLI::App* audit = parity::harness::add_grad_audit_command(app, audit_flags);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(fmt::format("{} (see parity --help)", e.what()));
    return kExitUsageOrInput;
  }
  try {
    if (inspect->parsed()) return run_inspect(fixture_path);
    if (check->parsed()) return parity::harness::run_check_command(*check, check_flags);
    if (compare->parsed()) return parity::harness::run_compare_command(compare_flags);
    if (logprobs->parsed()) return parity::harness::run_logprobs_command(*logprobs, logprobs_flags);
    if (report->parsed()) return parity::harness::run_report_command(report_flags);
    if (diagnose->parsed()) return parity::harness::run_diagnose_command(diagnose_flags);
    if (audit->parsed()) return parity::harness::run_grad_audit_command(audit_flags);
  } catch (const parity::Error& e) {
    print_error(e.what());
    return kExitUsageOrInput;
  } catch (const std::bad_alloc&) {  // an input that claims more memory than the machine has
    print_error("out of memory: an input (a shape, a config size, a file) asks for more than this machine holds");
    return kExitUsageOrInput;
  } catch (const nlohmann::json::exception& e) {  // a JSON field of the wrong type in an input file
    print_error(fmt::format("malformed JSON input: {}", e.what()));
    return kExitUsageOrInput;
  } catch (const std::exception& e) {  // still one line, still exit 2
    print_error(e.what());
    return kExitUsageOrInput;
  }
  return kExitUsageOrInput;
}
