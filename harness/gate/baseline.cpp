#include "gate/baseline.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "gate/budget.h"     // glob_match
#include "gate/toml_file.h"
#include "errors.h"

namespace parity::harness {

namespace {

constexpr const char* kSchema = "parity-baseline/1";

[[noreturn]] void fail_bands(const std::string& at, const std::string& what) { budget_error(at, what); }

double band_number(const toml::node& node, const std::string& at, const std::string& key) {
  std::optional<double> v = node.value<double>();
  // A negative or infinite band would accept anything (or nothing) without saying so.
  if (!v || !std::isfinite(*v) || *v < 0) fail_bands(at, fmt::format("\"{}\" must be a finite non-negative number", key));
  return *v;
}

// rel and floor of a band table (a rule also carries its selectors, which `selectors` names); a key
// the table leaves out keeps its value in `start` (a rule's: the file's default band).
Band parse_band(const toml::table& t, const std::string& at, std::initializer_list<std::string_view> selectors,
                Band start) {
  Band band = start;
  band.where = at;
  for (const auto& [key, node] : t) {
    if (key.str() == "rel") band.rel = band_number(node, at, "rel");
    else if (key.str() == "floor") band.floor = band_number(node, at, "floor");
    else if (std::find(selectors.begin(), selectors.end(), key.str()) == selectors.end())
      fail_bands(at, fmt::format("unknown key \"{}\" in a band (rel, floor{})", key.str(),
                                 selectors.size() ? ", hooks, mode, metric" : ""));
  }
  return band;
}

BandRule parse_rule(const toml::table& t, const std::string& at, const Band& default_band) {
  BandRule rule;
  rule.band = parse_band(t, at, {"hooks", "mode", "metric"}, default_band);
  bool selects = false;
  for (const char* key : {"hooks", "mode", "metric"}) {
    if (!t.contains(key)) continue;
    std::optional<std::string> v = t[key].value<std::string>();
    if (!v || v->empty()) fail_bands(at, fmt::format("\"{}\" must be a non-empty string", key));
    if (std::string_view(key) == "mode" && *v != "isolated" && *v != "chained" && *v != "compare")
      fail_bands(at, "mode must be \"isolated\", \"chained\" or \"compare\"");
    (std::string_view(key) == "hooks" ? rule.hooks : std::string_view(key) == "metric" ? rule.metric : rule.mode.emplace()) = *v;
    selects = true;
  }
  if (!selects) fail_bands(at, "a band rule needs hooks, mode or metric (the default band covers everything else)");
  return rule;
}

int literal_characters(const std::string& glob) {
  return static_cast<int>(std::count_if(glob.begin(), glob.end(), [](char c) { return c != '*' && c != '?'; }));
}

[[noreturn]] void fail_file(const std::string& source, const std::string& what) {
  throw InputError(fmt::format("[baseline {}] {}", source, what));
}

MetricValue value_from_json(const nlohmann::json& j, const std::string& source, size_t index) {
  const std::string at = fmt::format("values[{}]", index);
  if (!j.is_object()) fail_file(source, at + " must be an object");
  MetricValue v;
  for (const auto& [key, item] : j.items()) {
    if (key == "mode" || key == "hook" || key == "metric") {
      if (!item.is_string()) fail_file(source, fmt::format("{}.{} must be a string", at, key));
      (key == "mode" ? v.mode : key == "hook" ? v.hook : v.metric) = item.get<std::string>();
    } else if (key == "value") {
      if (item.is_number()) v.value = item.get<double>();
      else if (item == "nan") v.value = NAN;
      else if (item == "inf" || item == "-inf") v.value = item == "inf" ? INFINITY : -INFINITY;
      else fail_file(source, at + ".value must be a number, \"nan\", \"inf\" or \"-inf\"");
    } else {
      fail_file(source, fmt::format("{}: unknown key \"{}\" (mode, hook, metric, value)", at, key));
    }
  }
  if (v.metric.empty() || !j.contains("value")) fail_file(source, at + " needs metric and value");
  return v;
}

std::string key_of(const MetricValue& v) { return v.mode + '\n' + v.hook + '\n' + v.metric; }

BaselineEntry entry(const MetricValue& current, double baseline, const BandBudget& bands, const BandRule* rule) {
  const Band& band = rule ? rule->band : bands.default_band;
  const double half = std::max(band.rel * std::abs(baseline), band.floor);
  BaselineEntry e{current, baseline, baseline - half, baseline + half, Drift::kWithin, band.where};
  // An accepted non-finite value must stay exactly that (NaN stays NaN, +Inf stays +Inf); a
  // non-finite value on one side only fails.
  const bool same_nonfinite = (std::isnan(current.value) && std::isnan(baseline)) ||
                              (std::isinf(current.value) && current.value == baseline);
  if (same_nonfinite) return e;
  if (!std::isfinite(current.value) || !std::isfinite(baseline)) e.drift = Drift::kNotFinite;
  else if (current.value > e.high) e.drift = Drift::kGrew;
  else if (current.value < e.low) e.drift = Drift::kDropped;
  return e;
}

}  // namespace

std::string MetricValue::label() const {
  return mode.empty() ? metric : fmt::format("{} {} {}", mode, hook, metric);
}

bool BandRule::applies(const MetricValue& v) const {
  return (!mode || *mode == v.mode) && glob_match(hooks, v.hook) && glob_match(metric, v.metric);
}

int BandRule::specificity() const {
  return literal_characters(hooks) + literal_characters(metric) + (mode ? 1 : 0);
}

const BandRule* BandBudget::rule_for(const MetricValue& v) const {
  const BandRule* best = nullptr;
  for (const BandRule& r : rules)
    if (r.applies(v) && (!best || r.specificity() >= best->specificity())) best = &r;
  return best;
}

const Band& BandBudget::band_for(const MetricValue& v) const {
  const BandRule* r = rule_for(v);
  return r ? r->band : default_band;
}

BandBudget builtin_check_bands() {
  BandBudget b;
  b.default_band = {0.1, 1e-9, "built-in"};
  BandRule routing;
  routing.hooks = "*@top_k_index";
  routing.band = {0, 0, "built-in"};
  routing.builtin = true;
  b.rules.push_back(routing);
  return b;
}

BandBudget builtin_logprob_bands() {
  BandBudget b;
  b.default_band = {0.01, 1e-12, "built-in"};
  BandRule counts;
  counts.metric = "*_tokens";
  counts.band = {0, 0, "built-in"};
  counts.builtin = true;
  b.rules.push_back(counts);
  return b;
}

BandBudget parse_bands(const std::string& toml_text, const std::string& source) {
  return parse_bands(parse_budget_toml(toml_text, source), source, BandBudget{});
}

BandBudget parse_bands(const toml::table& root, const std::string& source, const BandBudget& builtin) {
  BandBudget b = builtin;
  const toml::node_view section = root["bands"];
  if (!section) return b;
  b.given_in = source;
  const toml::table* t = section.as_table();
  if (!t) fail_bands(where(source, *section.node()), "bands must be a table ([bands])");
  for (const auto& [key, node] : *t)
    if (key.str() != "default" && key.str() != "rule")
      fail_bands(where(source, node), fmt::format("unknown key \"{}\" in [bands] (default, rule)", key.str()));
  if (const toml::table* def = (*t)["default"].as_table())
    b.default_band = parse_band(*def, where(source, *def), {}, b.default_band);
  else if (t->contains("default")) fail_bands(where(source, *t), "bands.default must be { rel = ..., floor = ... }");
  if (const toml::node_view rules = (*t)["rule"]; rules) {
    const toml::array* arr = rules.as_array();
    if (!arr) fail_bands(where(source, *rules.node()), "bands.rule must be an array of tables ([[bands.rule]])");
    for (const toml::node& n : *arr) {
      if (!n.is_table()) fail_bands(where(source, n), "each band rule must be a table");
      b.rules.push_back(parse_rule(*n.as_table(), where(source, n), b.default_band));
    }
  }
  return b;
}

BaselineFile read_baseline(const std::filesystem::path& path) {
  const std::string source = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(source, "cannot open the file");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range: a number beyond double
    fail_file(source, fmt::format("not JSON: {}", e.what()));
  }
  if (!j.is_object() || j.value("schema", "") != kSchema)
    fail_file(source, fmt::format("not a baseline (schema \"{}\" expected)", kSchema));
  BaselineFile b;
  b.source = source;
  if (!j.contains("kind") || !j["kind"].is_string() || !j.contains("values") || !j["values"].is_array())
    fail_file(source, "needs kind (\"check\" or \"logprobs\") and a values array");
  b.kind = j["kind"].get<std::string>();
  if (b.kind != "check" && b.kind != "logprobs") fail_file(source, "kind must be \"check\" or \"logprobs\"");
  if (j.contains("accepted_from") && j["accepted_from"].is_string()) b.accepted_from = j["accepted_from"];
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < j["values"].size(); ++i) {
    b.values.push_back(value_from_json(j["values"][i], source, i));
    if (!seen.emplace(key_of(b.values.back()), i).second)
      fail_file(source, fmt::format("values[{}] repeats {}", i, b.values.back().label()));
  }
  if (b.values.empty()) fail_file(source, "holds no values: an empty baseline would check nothing");
  return b;
}

std::string baseline_json_text(const std::string& kind, const std::string& accepted_from,
                               const std::vector<MetricValue>& values) {
  std::string out = fmt::format("{{\n  \"schema\": \"{}\",\n  \"kind\": {},\n  \"accepted_from\": {},\n  \"values\": [\n",
                                kSchema, nlohmann::json(kind).dump(), nlohmann::json(accepted_from).dump());
  for (size_t i = 0; i < values.size(); ++i) {
    const MetricValue& v = values[i];
    nlohmann::ordered_json j;
    if (!v.mode.empty()) j["mode"] = v.mode;
    if (!v.hook.empty()) j["hook"] = v.hook;
    j["metric"] = v.metric;
    // JSON has no NaN or Inf: an accepted non-finite value is kept as a string, so it round-trips.
    j["value"] = std::isfinite(v.value) ? nlohmann::ordered_json(v.value)
                 : std::isnan(v.value)  ? nlohmann::ordered_json("nan")
                                        : nlohmann::ordered_json(v.value > 0 ? "inf" : "-inf");
    out += "    " + j.dump() + (i + 1 < values.size() ? ",\n" : "\n");
  }
  return out + "  ]\n}\n";
}

std::string_view drift_name(Drift drift) {
  switch (drift) {
    case Drift::kWithin: return "within";
    case Drift::kGrew: return "grew";
    case Drift::kDropped: return "dropped";
    case Drift::kNotFinite: return "not finite";
    case Drift::kMissing: return "missing";
    case Drift::kNew: return "new";
  }
  return "unknown";
}

bool BaselineReport::passed() const {
  return problems.empty() && !entries.empty() &&
         std::all_of(entries.begin(), entries.end(), [](const BaselineEntry& e) { return e.drift == Drift::kWithin; });
}

int64_t BaselineReport::count(Drift drift) const {
  return std::count_if(entries.begin(), entries.end(), [&](const BaselineEntry& e) { return e.drift == drift; });
}

std::string BaselineReport::first_failure() const {
  if (!problems.empty()) return "baseline: " + problems.front();
  for (const BaselineEntry& e : entries)
    if (e.drift != Drift::kWithin)
      return fmt::format("baseline: {} {} ({:.6g}, baseline {:.6g}, band [{:.6g}, {:.6g}])", e.current.label(),
                         drift_name(e.drift), e.current.value, e.baseline, e.low, e.high);
  return entries.empty() ? "baseline: no metric compared" : "";
}

BaselineReport compare_to_baseline(const BaselineFile& baseline, const std::string& kind,
                                   const std::vector<MetricValue>& current, const BandBudget& bands) {
  BaselineReport r;
  r.source = baseline.source;
  if (baseline.kind != kind) {
    r.problems.push_back(fmt::format("baseline {} holds {} metrics, this is a {} run", baseline.source, baseline.kind, kind));
    return r;
  }
  std::map<std::string, double> accepted;
  for (const MetricValue& v : baseline.values) accepted[key_of(v)] = v.value;
  std::vector<int> rule_used(bands.rules.size(), 0);
  auto rule_for = [&](const MetricValue& v) {
    const BandRule* rule = bands.rule_for(v);
    if (rule) rule_used[rule - bands.rules.data()] = 1;
    return rule;
  };
  for (const MetricValue& v : current) {
    auto it = accepted.find(key_of(v));
    if (it == accepted.end()) {
      r.entries.push_back({v, NAN, NAN, NAN, Drift::kNew, ""});
      continue;
    }
    r.entries.push_back(entry(v, it->second, bands, rule_for(v)));
    accepted.erase(it);
  }
  for (const MetricValue& v : baseline.values)
    if (accepted.count(key_of(v))) {
      MetricValue missing = v;
      missing.value = NAN;
      r.entries.push_back({missing, v.value, NAN, NAN, Drift::kMissing, ""});
    }
  for (size_t i = 0; i < bands.rules.size(); ++i)
    if (!rule_used[i] && !bands.rules[i].builtin)
      r.problems.push_back(fmt::format("band rule at {} matches no metric of the baseline", bands.rules[i].band.where));
  return r;
}

}  // namespace parity::harness
