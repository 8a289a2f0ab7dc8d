// HTML reports: one self-contained file per result (no network access, no external assets),
// rendered from the JSON results, so `--html` on a command and `parity report RESULTS.json` give
// the same page. Every string from a fixture, tokenizer, config or JSON file is escaped.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace parity::reports {

// Dispatches on "schema": parity-check/1, parity-logprobs/1 or parity-summary/1 (a multi-case run's
// index). InputError (exit 2) naming `source` for any other document or a missing/mistyped key.
std::string html_report(const nlohmann::json& result, const std::string& source);

namespace html {
std::string check_page(const nlohmann::json& result);
std::string logprobs_page(const nlohmann::json& result);
std::string index_page(const nlohmann::json& summary);
std::string baseline_panel(const nlohmann::json& baseline);  // the run-vs-baseline section of a page
}  // namespace html

}  // namespace parity::reports
