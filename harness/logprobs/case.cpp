#include "logprobs/case.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include "gate/budget.h"  // read_budget_file
#include "errors.h"

namespace parity::harness {

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw InputError(fmt::format("[case {}] {}", path.string(), what));
}

std::optional<std::string> string_key(const toml::table& root, const char* key, const std::filesystem::path& path) {
  const toml::node_view node = root[key];
  if (!node) return std::nullopt;
  std::optional<std::string> value = node.value<std::string>();
  if (!value || value->empty()) fail(path, fmt::format("{} must be a non-empty string", key));
  return value;
}

// A fixture path relative to the case file, or the reference as it is.
std::string side(const std::string& value, const std::filesystem::path& case_path) {
  return value == kReferenceSide ? value : (case_path.parent_path() / value).lexically_normal().string();
}

}  // namespace

void check_sources(const LogprobSources& s, const std::string& where) {
  const bool pair = s.train || s.rollout;
  if (s.run.has_value() == pair)
    throw InputError(fmt::format("{}: give a logprob run, or a train and a rollout fixture (not both, not neither)",
                                 where));
  if (pair && (!s.train || !s.rollout))
    throw InputError(fmt::format("{}: train and rollout come together", where));
  if (pair && *s.train == kReferenceSide && *s.rollout == kReferenceSide)
    throw InputError(fmt::format("{}: at most one side can be the reference", where));
}

LogprobCase load_logprob_case(const std::filesystem::path& path) {
  const std::string text = read_budget_file(path);
  LogprobCase c;
  c.path = path;
  c.budget = parse_logprob_budget(text, path.string(), /*is_case=*/true);  // validates the TOML first
  const toml::table root = toml::parse(text, path.string());
  if (std::optional<std::string> run = string_key(root, "run", path)) c.sources.run = (path.parent_path() / *run).lexically_normal();
  if (std::optional<std::string> train = string_key(root, "train", path)) c.sources.train = side(*train, path);
  if (std::optional<std::string> rollout = string_key(root, "rollout", path)) c.sources.rollout = side(*rollout, path);
  if (std::optional<std::string> tokenizer = string_key(root, "tokenizer", path))
    c.tokenizer = (path.parent_path() / *tokenizer).lexically_normal();
  if (std::optional<std::string> baseline = string_key(root, "baseline", path))
    c.baseline = (path.parent_path() / *baseline).lexically_normal();
  if (root.contains("bands") && !c.baseline) fail(path, "has [bands] but no baseline = \"<file>\" for them to apply to");
  check_sources(c.sources, fmt::format("[case {}]", path.string()));
  return c;
}

}  // namespace parity::harness
