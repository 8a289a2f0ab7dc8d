// The noise floor of `parity compare`: per hook, how far two correct implementations drift apart
// when one computes as the base dump's run did and the other as the target's, each routed as its
// dump routed. The base side is the reference at the base's run precision (exact sums); the target
// side is the noise-floor second opinion at the target's run precision (float sums, and for bf16
// the one-ulp roundings: run/noise_floor.h). Both run the whole forward on the dumps' common inputs.
// So a float32 base against a bfloat16 target gets bf16's own drift from float32 as its floor, a
// router near-tie that breaks the other way in the target cascades in the floor as in the dumps,
// and two dumps of one dtype get that dtype's chained noise floor.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/fixture.h"
#include "run/grad_sink.h"
#include "weights.h"

namespace parity::harness {

struct CompareFloor {
  std::map<std::string, Array> base, target;  // by hook key: each side's forward
  std::map<std::string, IndexArray> base_index, target_index;  // by router: the routing each followed
  std::string note;  // non-empty: no floor, and why (each hook's limit then falls back)
};

// `weights`: replay both sides with these (--weights); else each side's own /weights, else the
// other side's when its run dtype is the same. Never throws for a model the reference cannot run:
// the floor is then absent and `note` says why.
CompareFloor compare_floor(const Fixture& base, const Fixture& target, const WeightSource* weights);

// The same for gradients (`parity compare --grad`): each side's forward, routed as its dump routed,
// and its backward from the base's loss (the dumps' losses are the same: run/grad_compare.h). Each
// row's floor is how far the two sides' gradients lie apart.
struct GradCompareFloor {
  GradFloorSink base, target;  // activation gradients by key ("/loss/value" too), parameters summed
  bool available = false;
  std::string note;  // non-empty: no floor, and why
};
GradCompareFloor grad_compare_floor(const Fixture& base, const Fixture& target, const WeightSource* weights);

}  // namespace parity::harness
