// What every HTML report shares: escaping, number formatting, the page shell (inline stylesheet and
// script from reports/assets/, a Content-Security-Policy that forbids any network access), the
// verdict banner, and small table helpers. Every string that comes from a fixture, tokenizer,
// config or JSON file goes through esc().
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace parity::reports::html {

std::string esc(std::string_view text);  // & < > " ' escaped; valid in text and in quoted attributes
std::string esc(const nlohmann::json& value);  // a JSON string's text, or a scalar's dump; null -> ""
// Exact overloads, so a std::string or a literal never converts to nlohmann::json first.
inline std::string esc(const std::string& text) { return esc(std::string_view(text)); }
inline std::string esc(const char* text) { return esc(std::string_view(text)); }

// A number for a table cell: 3 significant digits, "NaN" for null (JSON's NaN/Inf), "0" exact.
std::string num(const nlohmann::json& value);
std::string num(double value);
// A tensor element: 9 significant digits, enough to tell two float32 values apart.
std::string element(const nlohmann::json& value);
// data-v attribute value for sorting: the number, or "NaN" (the script sorts it last).
std::string sort_key(const nlohmann::json& value);

// A whole document: title, inline CSS and JS, and `body`.
std::string page(std::string_view title, const std::string& body);

// The verdict banner: "pass", "fail" or "error", a headline and an optional detail line.
std::string verdict_banner(std::string_view verdict, std::string_view headline, std::string_view detail);

// A sortable table's header, in a scrolling box: each column "label" or "label:num" (sorted as
// numbers) or "label:text"; a column without a suffix does not sort. Close it with table_end().
std::string table_head(std::string_view table_id, std::initializer_list<std::string_view> columns);
inline constexpr const char* table_end = "</tbody></table></div>\n";
// A text filter, optional select filters on a row attribute, and the shown-rows counter.
std::string filter_controls(std::string_view table_id, const std::string& selects);
std::string select_filter(std::string_view table_id, std::string_view row_attribute, std::string_view label,
                          std::initializer_list<std::string_view> options);
std::string select_filter(std::string_view table_id, std::string_view row_attribute, std::string_view label,
                          const std::vector<std::string>& options);

}  // namespace parity::reports::html
