// Escaping and number formatting every report writer shares.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace parity::reports {

// ANSI highlighting for terminal reports (the CLI turns it on only for a terminal).
inline constexpr const char* kRed = "\033[1;31m";
inline constexpr const char* kYellow = "\033[33m";
inline constexpr const char* kReset = "\033[0m";

// JSON has no NaN or Inf: such values are written as null (the status already says why).
inline nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

// " (tokens 3, 7, 12)": a top-k hook's near-tie tokens, the first 8 and a count of the rest; "" for none.
inline std::string near_tie_tokens_text(const std::vector<int64_t>& tokens) {
  if (tokens.empty()) return "";
  constexpr size_t kShown = 8;
  const std::vector<int64_t> shown(tokens.begin(), tokens.begin() + std::min(tokens.size(), kShown));
  const std::string rest = tokens.size() > kShown ? fmt::format(" and {} more", tokens.size() - kShown) : "";
  return fmt::format(" (token{} {}{})", tokens.size() == 1 ? "" : "s", fmt::join(shown, ", "), rest);
}

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

// Text for a terminal or a CI log: every control character that is not a line break or a tab (C0,
// DEL, and C1 as UTF-8 encodes it: an ESC or CSI could drive the terminal, rewrite earlier log lines
// or set the window title) is shown as \xNN, except the report's own colour codes above. Applied to
// whole reports at print time, so no foreign string (a hook name, a token text, a file name, an
// error message) reaches the terminal raw.
inline std::string terminal_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b) {
      bool ours = false;
      for (std::string_view code : {std::string_view(kRed), std::string_view(kYellow), std::string_view(kReset)})
        if (s.substr(i, code.size()) == code) {
          out += code;
          i += code.size() - 1;
          ours = true;
          break;
        }
      if (ours) continue;
    }
    const bool c1 = c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(s[i + 1]) <= 0x9f;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c1) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(s[++i]));
    } else {
      out += static_cast<char>(c);
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
