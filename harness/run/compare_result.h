// What `parity compare` (compare.h) adds to a hook's result (check.h HookResult): the metrics of a
// mixed-dtype pair after rounding both sides to the lower precision, and the three-way view (the
// C++ reference replayed on each side's own inputs).
#pragma once

#include <optional>
#include <string>

namespace parity::harness {

// A hook stored in two float dtypes (e.g. float32 by the base, bfloat16 by the target).
struct LowerPrecision {
  std::string dtype;        // the lower of the two stored dtypes: "bfloat16", "float16", "float32"
  std::string higher_side;  // "base" or "target": the side stored in the higher precision
  double rel_l2 = 0;        // ‖round(target) − round(base)‖₂ / ‖round(base)‖₂
  double floor = 0;         // ‖round(h) − h‖₂ / ‖h‖₂ of the higher side h: what rounding alone costs
};

// One side's own error against the reference, replayed isolated on that side's own inputs.
struct ReferenceSide {
  std::optional<double> measured;  // the gated metric of the isolated replay (`metric`)
  std::string metric;              // its name: the two sides' budgets may gate different metrics
  std::optional<double> rel_l2;    // float hooks
  std::optional<bool> within;      // within the isolated budget; nullopt: no value (see note)
  std::string limit;               // "rel_l2 <= 1e-05"
  std::string note;                // why there is no value: no reference, cannot replay, not produced
};

struct ReferenceVerdict {
  std::string metric;  // "rel_l2", "tokens_differ", ...: the base's (else the target's) ReferenceSide::metric
  ReferenceSide base, target;
  std::string departs;  // "target", "base", "both", "neither"; "" when a side has no value
  std::string verdict;  // one sentence: "the target departs from the reference (rel_l2 2.1e-01 ...), ..."
};

}  // namespace parity::harness
