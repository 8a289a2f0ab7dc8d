// Escaping and number formatting every report writer shares.
#pragma once

#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace parity::reports {

// ANSI highlighting for terminal reports (the CLI turns it on only for a terminal).
inline constexpr const char* kRed = "\033[1;31m";
inline constexpr const char* kYellow = "\033[33m";
inline constexpr const char* kReset = "\033[0m";

// JSON has no NaN or Inf: such values are written as null (the status already says why).
inline nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

// A JUnit XML document around <testsuite> elements.
inline std::string junit_document(const std::string& suites) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n" + suites + "</testsuites>\n";
}

inline std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 cannot carry most control characters, even escaped: show their code instead.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out;
}

// A string from a tokenizer or a file, quoted for a terminal: control characters (an ESC could
// drive the terminal) and quotes escaped as JSON escapes them; invalid UTF-8 replaced.
inline std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace parity::reports
