// Multi-case runs: `parity check cases/ --out DIR` runs every case file under a directory (check
// cases and logprob cases, told apart by their [logprobs] table), writes each case's reports
// (OUT/cases/<case path>.{html,json,xml,txt}), an index page (OUT/index.html), one JSON summary
// (OUT/summary.json, schema parity-summary/1) and one JUnit file (OUT/junit.xml). A case that
// cannot run (an input error, an unwritable report) is listed with its message and the others
// still run. Returns the worst exit code: 2 if any case could not run, else 1 if any failed, else 0.
#pragma once

#include <filesystem>
#include <string>

namespace parity::harness {

// write_baselines: each case that names a baseline has it rewritten from this run (when its gate passes).
int run_suite(const std::filesystem::path& cases_dir, const std::string& out_dir, bool write_baselines);

}  // namespace parity::harness
