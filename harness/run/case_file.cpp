#include "run/case_file.h"

#include <algorithm>

#include <toml++/toml.h>

namespace parity::harness {

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw InputError(fmt::format("[case {}] {}", path.string(), what));
}

}  // namespace

Case load_case(const std::filesystem::path& path) {
  Case c;
  c.path = path;
  c.budget = load_budget(path);  // validates the TOML and every budget key first
  const toml::table root = toml::parse_file(path.string());
  std::optional<std::string> fixture = root["fixture"].value<std::string>();
  if (!fixture) fail(path, "needs fixture = \"<path relative to the case file>\"");
  c.fixture = (path.parent_path() / *fixture).lexically_normal();
  const toml::array* modes = root["modes"].as_array();
  if (!modes || modes->empty()) fail(path, "needs modes = [\"isolated\", \"chained\"] (one or both)");
  for (const toml::node& n : *modes) {
    std::optional<std::string> name = n.value<std::string>();
    std::optional<Mode> mode = name ? mode_from_name(*name) : std::nullopt;
    if (!mode) fail(path, "modes must list \"isolated\" and/or \"chained\"");
    if (std::find(c.modes.begin(), c.modes.end(), *mode) != c.modes.end())
      fail(path, fmt::format("modes lists \"{}\" twice", *name));
    c.budget.section(*mode);  // every listed mode needs its section
    c.modes.push_back(*mode);
  }
  if (const toml::node_view node = root["baseline"]; node) {
    std::optional<std::string> b = node.value<std::string>();
    if (!b || b->empty()) fail(path, "baseline must be a path relative to the case file");
    c.baseline = (path.parent_path() / *b).lexically_normal();
  }
  if (const toml::node_view node = root["expect"]; node) {
    if (!node.is_table()) fail(path, "expect must be a table: [expect]");
    c.expect = parse_expectation(*node.as_table(), c.modes, path.string());
    if (!c.expect->diagnosis.empty() && !c.budget.modes.count(Mode::kIsolated))
      fail(path, "[expect] diagnosis needs an [isolated] budget section (parity diagnose replays isolated)");
  }
  if (root.contains("bands") && !c.baseline) fail(path, "has [bands] but no baseline = \"<file>\" for them to apply to");
  if (const toml::node_view node = root["precision"]; node) {
    std::optional<std::string> p = node.value<std::string>();
    c.precision = p ? precision_from_name(*p) : std::nullopt;
    if (!c.precision) fail(path, "precision must be \"f64\", \"f32\" or \"bf16\"");
  }
  return c;
}

}  // namespace parity::harness
