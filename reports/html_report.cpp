#include "html_report.h"

#include <fmt/format.h>

#include "errors.h"

namespace parity::reports {

std::string html_report(const nlohmann::json& result, const std::string& source) {
  const std::string schema = result.is_object() && result.contains("schema") && result["schema"].is_string()
                                 ? result["schema"].get<std::string>()
                                 : "";
  // A result of the right schema but without its content (hand-edited, or another tool's JSON that
  // borrowed the name) must not render as an empty page that looks complete.
  const auto require = [&](const char* key) {
    if (!result.contains(key) || !result[key].is_array() || result[key].empty())
      throw harness::InputError(
          fmt::format("[report {}] not a valid {} result: it needs a non-empty \"{}\" array", source, schema, key));
  };
  if (schema == "parity-check/1") require("runs");
  if (schema == "parity-logprobs/1") require("metrics");
  if (schema == "parity-summary/1") require("cases");
  try {
    if (schema == "parity-check/1") return html::check_page(result);
    if (schema == "parity-logprobs/1") return html::logprobs_page(result);
    if (schema == "parity-summary/1") return html::index_page(result);
  } catch (const nlohmann::json::exception& e) {
    // A hand-edited or truncated result: name the file and what was wrong, never half a page.
    throw harness::InputError(fmt::format("[report {}] not a valid {} result: {}", source, schema, e.what()));
  }
  throw harness::InputError(fmt::format("[report {}] schema \"{}\" is not a parity result (parity-check/1, parity-logprobs/1, "
                               "parity-summary/1)", source, schema));
}

}  // namespace parity::reports
