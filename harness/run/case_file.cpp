#include "run/case_file.h"

#include <algorithm>

#include <toml++/toml.h>

#include "gate/toml_file.h"

namespace parity::harness {

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw InputError(fmt::format("[case {}] {}", path.string(), what));
}

// A non-empty string key, or nullopt when absent.
std::optional<std::string> string_key(const toml::table& root, const char* key, const std::filesystem::path& path) {
  const toml::node_view node = root[key];
  if (!node) return std::nullopt;
  std::optional<std::string> value = node.value<std::string>();
  if (!value || value->empty()) fail(path, fmt::format("{} must be a non-empty string", key));
  return value;
}

std::filesystem::path relative_to(const std::filesystem::path& case_path, const std::string& file) {
  return (case_path.parent_path() / file).lexically_normal();
}

std::vector<Mode> parse_modes(const toml::table& root, const std::filesystem::path& path) {
  if (!root.contains("modes")) return {Mode::kIsolated, Mode::kChained};
  const toml::array* modes = root["modes"].as_array();
  if (!modes || modes->empty()) fail(path, "modes must list \"isolated\", \"chained\", \"grad.isolated\" or \"grad.chained\" (default: isolated and chained)");
  std::vector<Mode> out;
  for (const toml::node& n : *modes) {
    std::optional<std::string> name = n.value<std::string>();
    std::optional<Mode> mode = name ? mode_from_name(*name) : std::nullopt;
    if (!mode) fail(path, "modes must list \"isolated\", \"chained\", \"grad.isolated\" or \"grad.chained\"");
    if (std::find(out.begin(), out.end(), *mode) != out.end()) fail(path, fmt::format("modes lists \"{}\" twice", *name));
    out.push_back(*mode);
  }
  return out;
}

void load_check_case(const toml::table& root, Case& c) {
  const std::filesystem::path& path = c.path;
  c.budget = parse_budget(root, path.string());  // validates every budget key first
  const std::optional<std::string> fixture = string_key(root, "fixture", path);
  if (!fixture) fail(path, "needs fixture = \"<path relative to the case file>\"");
  c.fixture = relative_to(path, *fixture);
  c.modes = parse_modes(root, path);
  if (const toml::node_view node = root["expect"]; node) {
    if (!node.is_table()) fail(path, "expect must be a table: [expect]");
    // A diagnosis replays isolated under the case's budget laid over the built-in one, which has an
    // [isolated] section for every run dtype it knows.
    c.expect = parse_expectation(*node.as_table(), c.modes, path.string());
  }
  if (const toml::node_view node = root["precision"]; node) {
    std::optional<std::string> p = node.value<std::string>();
    c.precision = p ? precision_from_name(*p) : std::nullopt;
    if (!c.precision) fail(path, "precision must be \"f64\", \"f32\" or \"bf16\"");
  }
}

void load_logprob_case(const toml::table& root, Case& c) {
  const std::filesystem::path& path = c.path;
  c.kind = CaseKind::kLogprobs;
  c.logprob_budget = parse_logprob_budget(root, path.string(), /*is_case=*/true);  // validates the keys first
  if (std::optional<std::string> run = string_key(root, "run", path)) c.sources.run = relative_to(path, *run);
  // A side is a fixture path relative to the case file, or the reference as it is.
  for (const auto& [key, side] : {std::pair{"train", &c.sources.train}, std::pair{"rollout", &c.sources.rollout}})
    if (std::optional<std::string> value = string_key(root, key, path))
      *side = *value == kReferenceSide ? *value : relative_to(path, *value).string();
  if (std::optional<std::string> tokenizer = string_key(root, "tokenizer", path)) c.tokenizer = relative_to(path, *tokenizer);
  check_sources(c.sources, fmt::format("[case {}]", path.string()));
}

}  // namespace

Case load_case(const std::filesystem::path& path) {
  const toml::table root = parse_budget_toml(read_budget_file(path), path.string());
  Case c;
  c.path = path;
  if (root.contains("logprobs")) load_logprob_case(root, c);
  else load_check_case(root, c);
  if (std::optional<std::string> baseline = string_key(root, "baseline", path)) c.baseline = relative_to(path, *baseline);
  if (root.contains("bands") && !c.baseline) fail(path, "has [bands] but no baseline = \"<file>\" for them to apply to");
  return c;
}

}  // namespace parity::harness
