// Regression baselines (golden/baselines/*.json): the metrics of an accepted run, and the
// two-sided band each metric of a later run must stay inside,
//   ref − max(rel·|ref|, floor) ≤ value ≤ ref + max(rel·|ref|, floor).
// Two-sided on purpose: an error that suddenly drops (a hook no longer computed, a comparison
// against itself) is as suspicious as one that grows. Bands come from a budget file's [bands]:
//   [bands]
//   default = { rel = 0.1, floor = 1e-9 }
//   [[bands.rule]]                  most specific rule wins (literal characters, like budget rules)
//   hooks = "*@top_k_index"         glob over hook names (check); optional
//   mode = "chained"                optional; "isolated" or "chained"
//   metric = "max_abs"              glob over metric names; optional (at least one selector)
//   rel = 0.5
//   floor = 1e-6
// A rule's missing rel or floor is the default band's. Fail closed: a baseline metric the run
// lacks, a run metric the baseline lacks, a non-finite value that changed (NaN, +Inf and -Inf must
// each stay themselves), and a band rule that matches no metric each fail.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace parity::harness {

// One baselined number. Check metrics name a mode and a hook; logprob metrics leave both empty.
struct MetricValue {
  std::string mode, hook, metric;
  double value = 0;  // may be NaN or ±Inf: a baseline file keeps them as "nan", "inf", "-inf"

  std::string label() const;  // "chained model.layers.1.mlp rel_l2", or "kl_k3"
};

struct Band {
  double rel = 0.1, floor = 0;
  std::string where = "built-in";  // "cases/x.toml:14"
};

struct BandRule {
  std::optional<std::string> mode;
  std::string hooks = "*", metric = "*";
  Band band;
  bool builtin = false;  // a built-in rule: never "matches nothing" (a file's rule that does is stale)

  bool applies(const MetricValue& v) const;
  int specificity() const;
};

struct BandBudget {
  Band default_band;
  std::vector<BandRule> rules;
  std::string given_in;  // the file whose [bands] table this holds ("" = the built-in bands only)

  const BandRule* rule_for(const MetricValue& v) const;
  const Band& band_for(const MetricValue& v) const;
};

// The built-in bands. Check runs: rel 0.1, floor 1e-9 (golden runs are bit-identical across
// repeats and between 1 and 2 BLAS threads, so 10% only catches real moves), routing counts
// (@top_k_index) exact. Logprob runs: rel 0.01, floor 1e-12, token counts (*_tokens) exact.
BandBudget builtin_check_bands();
BandBudget builtin_logprob_bands();

// The [bands] table of a parsed budget or case file laid over `builtin`: its default replaces the
// built-in default, its rules (whose missing rel or floor are that default's) follow the built-in ones.
BandBudget parse_bands(const toml::table& root, const std::string& source, const BandBudget& builtin);
// The [bands] of a TOML text over no built-in rules (the band rules' own tests).
BandBudget parse_bands(const std::string& toml_text, const std::string& source);

struct BaselineFile {
  std::string source, kind;  // kind: "check" or "logprobs"
  std::string accepted_from;  // the case or fixture the values were measured on
  std::vector<MetricValue> values;
};

BaselineFile read_baseline(const std::filesystem::path& path);  // InputError on anything malformed
// One value per line, so a re-accepted baseline reads as a diff of the metrics that moved.
std::string baseline_json_text(const std::string& kind, const std::string& accepted_from,
                               const std::vector<MetricValue>& values);

enum class Drift { kWithin, kGrew, kDropped, kNotFinite, kMissing, kNew };
std::string_view drift_name(Drift drift);  // "within", "grew", "dropped", "not finite", "missing", "new"

struct BaselineEntry {
  MetricValue current;       // for kMissing: the baseline's key with a NaN value
  double baseline = 0;       // NaN for kNew
  double low = 0, high = 0;  // the band
  Drift drift = Drift::kWithin;
  std::string rule;          // where the band comes from
};

struct BaselineReport {
  std::string source;
  std::vector<BaselineEntry> entries;  // the run's order, then metrics only the baseline has
  std::vector<std::string> problems;   // band rules that matched nothing, a baseline of another kind

  bool passed() const;
  int64_t count(Drift drift) const;
  std::string first_failure() const;  // "baseline: chained model.norm rel_l2 grew (...)", "" when it passed
};

BaselineReport compare_to_baseline(const BaselineFile& baseline, const std::string& kind,
                                   const std::vector<MetricValue>& current, const BandBudget& bands);

}  // namespace parity::harness
