#include "run/expectation.h"

#include <algorithm>

#include "run/check.h"
#include "models/variants.h"

namespace parity::harness {

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw InputError(fmt::format("[case {}] [expect] {}", source, what));
}

std::string string_key(const toml::table& table, std::string_view key, const std::string& source) {
  const std::optional<std::string> value = table[key].value<std::string>();
  if (!value || value->empty()) fail(source, fmt::format("{} must be a non-empty string", key));
  return *value;
}

}  // namespace

namespace {

// [expect] bug = "<name>": the known-bug registry (references/models/known_bugs.toml) holds where
// the bug's zoo fixture fails first in each mode, and the diagnosis is the bug itself, so a zoo
// case states neither.
Expectation expectation_of_bug(const toml::table& table, const std::vector<Mode>& modes, const std::string& source) {
  for (const auto& [key, node] : table)
    if (key.str() != "bug")
      fail(source, fmt::format("bug = \"...\" takes its first failures and diagnosis from the known-bug registry; "
                               "\"{}\" cannot be given beside it", key.str()));
  const std::string name = string_key(table, "bug", source);
  const VariantInfo* bug = find_variant(name);
  if (!bug) fail(source, fmt::format("bug \"{}\" is not in the known-bug registry (parity diagnose --list)", name));
  Expectation e;
  for (Mode mode : modes)
    e.first_failure[mode] = mode == Mode::kIsolated ? bug->first_failure_isolated : bug->first_failure_chained;
  e.diagnosis = name;
  return e;
}

}  // namespace

Expectation parse_expectation(const toml::table& table, const std::vector<Mode>& modes, const std::string& source) {
  if (table.contains("bug")) return expectation_of_bug(table, modes, source);
  Expectation e;
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name == "diagnosis") continue;
    const std::optional<Mode> mode = mode_from_name(name);
    if (!mode) fail(source, fmt::format("unknown key \"{}\" (a mode of the case, or diagnosis)", name));
    if (std::find(modes.begin(), modes.end(), *mode) == modes.end())
      fail(source, fmt::format("names mode \"{}\", which the case does not run", name));
    e.first_failure[*mode] = string_key(table, name, source);
  }
  for (Mode mode : modes)
    if (!e.first_failure.count(mode))
      fail(source, fmt::format("needs {} = \"<the hook that must fail first>\"", mode_name(mode)));
  if (table.contains("diagnosis")) {
    e.diagnosis = string_key(table, "diagnosis", source);
    if (e.diagnosis != "hf" && !find_variant(e.diagnosis))
      fail(source, fmt::format("diagnosis \"{}\" is neither \"hf\" nor a known variant (parity diagnose --list)",
                               e.diagnosis));
  }
  return e;
}

bool ExpectationReport::met() const {
  return !modes.empty() && std::all_of(modes.begin(), modes.end(), [](const ModeExpectation& m) { return m.met; }) &&
         diagnosis_found == diagnosis_expected;
}

std::string ExpectationReport::summary() const {
  std::string out = met() ? "expected failure reproduced:" : "expected failure NOT reproduced:";
  for (const ModeExpectation& m : modes) {
    const std::string actual = m.actual.empty() ? "the gate passed" : "fails first at " + m.actual;
    out += fmt::format("{} {} {}", &m == &modes.front() ? "" : ";", mode_name(m.mode), actual);
    if (!m.met) out += fmt::format(" (expected {})", m.expected);
  }
  if (!diagnosis_expected.empty())
    out += fmt::format("; diagnose: {}{}", diagnosis_found,
                       diagnosis_found == diagnosis_expected ? "" : " (expected " + diagnosis_expected + ")");
  return out;
}

ExpectationReport check_expectation(const Expectation& expect, const std::vector<CheckReport>& runs) {
  ExpectationReport report;
  for (const CheckReport& run : runs) {
    ModeExpectation m;
    m.mode = run.mode;
    auto it = expect.first_failure.find(run.mode);
    m.expected = it == expect.first_failure.end() ? "" : it->second;
    // A run problem (an aborted forward, a stale budget rule) is never the expected failure, even
    // after the expected hook failed: it would hide a broken case behind a reproduced bug.
    if (!run.problems.empty()) m.actual = "run problem: " + run.problems.front();
    else if (const HookResult* h = run.first_failure()) m.actual = h->hook;
    m.met = !m.expected.empty() && run.problems.empty() && run.first_failure() && glob_match(m.expected, m.actual);
    report.modes.push_back(std::move(m));
  }
  return report;
}

}  // namespace parity::harness
