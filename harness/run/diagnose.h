// `parity diagnose`: which known bug, if any, explains a target dump. The target is replayed in
// isolated mode (every module on the target's own inputs) once with HF's math and once under each
// reference variant (references/models/variants.h) that applies to its family; the variants are
// ranked by how well they reproduce it: fewest failing hooks, then the smallest excess over the
// budgets. The verdict is "matches HF" (HF's math passes), "matches variant X" (HF's math fails and
// X passes every hook), or "unknown deviation, first seen at H" (nothing passes).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "run/check.h"
#include "models/variants.h"

namespace parity::harness {

struct VariantTrial {
  const VariantInfo* variant = nullptr;  // nullptr: HF's math
  CheckReport report;                    // the isolated check under it
  int64_t failed = 0;                    // failing hooks plus run problems
  double excess = 0;                     // sum over failing hooks of log10(measured / limit), >= 0
  bool changes_model = true;             // false: the same results as HF's math (nothing to switch here)

  std::string name() const { return variant ? std::string(variant->name) : "hf"; }
  bool passed() const { return report.passed(); }
};

enum class Verdict { kMatchesHf, kMatchesVariant, kUnknown };
std::string_view verdict_name(Verdict verdict);  // "matches_hf", "matches_variant", "unknown"

struct Diagnosis {
  std::string fixture;
  std::string family;
  Verdict verdict = Verdict::kUnknown;
  std::vector<VariantTrial> ranking;  // best first; HF's math is one of them

  const VariantTrial& hf() const;    // HF's math
  const VariantTrial& best() const;  // the matching trial (HF's when it matches HF), else the closest

  // "hf", the matching variant's name, or "unknown".
  std::string name() const;
  // The first hook where HF's math fails (evidence of a deviation); nullptr when it passes.
  const HookResult* first_seen() const;
};

struct DiagnoseOptions {
  std::optional<Precision> precision;     // nullopt: the fixture's run dtype
  const WeightSource* weights = nullptr;  // nullptr: the fixture's /weights
  std::vector<std::string> only;          // variant names to try; empty = every one of the family
  std::string expected;                   // "" or what the caller expects: "hf" or a variant of the family
};

// InputError on an unknown variant name or one of another family (in `only` or `expected`).
Diagnosis diagnose(const Fixture& fixture, const Budget& budget, const DiagnoseOptions& options);

// A failing hook's distance from its budget, in decades: log10(measured / limit) for upper bounds,
// log10(limit / measured) for cosine, log10(1 + tokens) for routing; 10 when it has no metric
// (missing, mismatched, non-finite). 0 for a hook that passed or was skipped.
double excess_over_budget(const HookResult& hook);

}  // namespace parity::harness
