// Fuzz target: the HTML renderer's JSON input (`parity report RESULTS.json`): a parity-check/1,
// parity-logprobs/1 or parity-summary/1 result, hand-edited, truncated or another tool's. JSON
// that does not parse is refused before the renderer, as the CLI does; a document that parses
// must render completely or be refused with an InputError.
#include <cstdint>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "fuzz/fuzz_input.h"
#include "html_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json result;
  try {
    result = nlohmann::json::parse(parity::fuzz::as_bytes(data, size));
  } catch (const nlohmann::json::exception& e) {  // parse_error, out_of_range (a number beyond double)
    // Not JSON: the CLI's own message, before any report code runs. Still a refusal.
    return parity::fuzz::run_one([&] { throw parity::Error(e.what()); });
  }
  return parity::fuzz::run_one([&] { (void)parity::reports::html_report(result, "fuzz.json"); });
}
