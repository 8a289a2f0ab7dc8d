#include "run/diagnose.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "models/model.h"

namespace parity::harness {

namespace {

constexpr double kNoMetricExcess = 10;  // a hook that could not be compared at all

std::string family_of(const Fixture& fixture) { return resolved_config(fixture.config()).at("family"); }

std::vector<const VariantInfo*> variants_to_try(const std::string& family, const std::vector<std::string>& only) {
  std::vector<const VariantInfo*> out;
  if (only.empty()) {
    for (const VariantInfo& v : known_variants())
      if (variant_applies(v, family)) out.push_back(&v);
    return out;
  }
  for (const std::string& name : only) {
    const VariantInfo* v = find_variant(name);
    if (!v) throw InputError(fmt::format("unknown variant \"{}\" (parity diagnose --list)", name));
    if (!variant_applies(*v, family))
      throw InputError(fmt::format("variant \"{}\" is for {} models, the fixture is {}", name, v->family, family));
    out.push_back(v);
  }
  return out;
}

// The same statuses and gated values everywhere: the variant switched nothing on this model.
bool same_results(const CheckReport& a, const CheckReport& b) {
  if (a.hooks.size() != b.hooks.size() || a.problems != b.problems) return false;
  for (size_t i = 0; i < a.hooks.size(); ++i) {
    const HookResult &x = a.hooks[i], &y = b.hooks[i];
    if (x.hook != y.hook || x.status != y.status || x.measured.has_value() != y.measured.has_value()) return false;
    if (x.measured && *x.measured != *y.measured && !(std::isnan(*x.measured) && std::isnan(*y.measured))) return false;
  }
  return true;
}

VariantTrial run_trial(const Fixture& fixture, const Budget& budget, const DiagnoseOptions& options,
                       const VariantInfo* variant) {
  VariantTrial t;
  t.variant = variant;
  CheckOptions check{Mode::kIsolated, options.precision, "", options.weights, Variants()};
  if (variant) check.variants = Variants::only(variant->variant);
  t.report = run_check(fixture, budget, check);
  t.failed = t.report.count(Status::kFail) + static_cast<int64_t>(t.report.problems.size());
  for (const HookResult& h : t.report.hooks) t.excess += excess_over_budget(h);
  t.excess += kNoMetricExcess * static_cast<double>(t.report.problems.size());
  return t;
}

}  // namespace

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMatchesHf: return "matches_hf";
    case Verdict::kMatchesVariant: return "matches_variant";
    case Verdict::kUnknown: return "unknown";
  }
  return "unknown";
}

double excess_over_budget(const HookResult& h) {
  if (h.status != Status::kFail) return 0;
  if (!h.measured || !h.limit || !std::isfinite(*h.measured)) return kNoMetricExcess;
  const double measured = *h.measured, limit = h.limit->value;
  if (h.limit->metric == Metric::kTokensDiffer) return std::log10(1 + measured);
  const double ratio = h.limit->metric == Metric::kCosine ? limit / std::max(measured, 1e-300)
                                                          : measured / std::max(limit, 1e-300);
  return std::clamp(std::log10(ratio), 0.0, kNoMetricExcess);
}

const VariantTrial& Diagnosis::hf() const {
  for (const VariantTrial& t : ranking)
    if (!t.variant) return t;
  throw Error("[diagnose] the ranking lacks HF's own trial");
}

const VariantTrial& Diagnosis::best() const { return verdict == Verdict::kMatchesHf ? hf() : ranking.front(); }

std::string Diagnosis::name() const {
  switch (verdict) {
    case Verdict::kMatchesHf: return "hf";
    case Verdict::kMatchesVariant: return best().name();
    case Verdict::kUnknown: return "unknown";
  }
  return "unknown";
}

const HookResult* Diagnosis::first_seen() const { return hf().report.first_failure(); }

Diagnosis diagnose(const Fixture& fixture, const Budget& budget, const DiagnoseOptions& options) {
  Diagnosis d;
  d.fixture = fixture.path().string();
  d.family = family_of(fixture);
  const std::vector<const VariantInfo*> variants = variants_to_try(d.family, options.only);
  if (!options.expected.empty() && options.expected != "hf")
    variants_to_try(d.family, {options.expected});  // throws for an unknown name or another family's variant
  d.ranking.push_back(run_trial(fixture, budget, options, nullptr));
  for (const VariantInfo* v : variants) {
    d.ranking.push_back(run_trial(fixture, budget, options, v));
    d.ranking.back().changes_model = !same_results(d.ranking.back().report, d.ranking.front().report);
  }
  // Best first; a variant that changes nothing ranks after every one that does (it is HF's math).
  std::stable_sort(d.ranking.begin(), d.ranking.end(), [](const VariantTrial& a, const VariantTrial& b) {
    return std::make_tuple(!a.changes_model, a.failed, a.excess) < std::make_tuple(!b.changes_model, b.failed, b.excess);
  });
  if (d.hf().passed()) d.verdict = Verdict::kMatchesHf;
  else if (d.ranking.front().variant && d.ranking.front().passed()) d.verdict = Verdict::kMatchesVariant;
  else d.verdict = Verdict::kUnknown;
  return d;
}

}  // namespace parity::harness
