#include "gate/toml_file.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "errors.h"

namespace parity::harness {

std::string read_budget_file(const std::filesystem::path& path) {
  std::error_code ec;
  // An ifstream opens a directory and reads it as empty: an empty budget would silently be the built-in one.
  if (std::filesystem::is_directory(path, ec))
    throw InputError(fmt::format("[budget {}] is a directory, not a budget or case file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("[budget {}] cannot open the file", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

toml::table parse_budget_toml(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw InputError(fmt::format("[budget {}:{}] {}", source, e.source().begin.line, e.description()));
  }
}

std::string where(const std::string& source, const toml::node& node) {
  return fmt::format("{}:{}", source, node.source().begin.line);
}

void budget_error(const std::string& at, const std::string& what) {
  throw InputError(fmt::format("[budget {}] {}", at, what));
}

}  // namespace parity::harness
