// `parity compare BASE TARGET`: two dumps of the same model and inputs (HF and an engine dump
// written with the dumper API or any tool that follows the fixture format), compared hook by hook
// in the base's forward order with the same metrics and budgets as `parity check`. The base is the
// "hf" side of every metric (the denominator of rel_l2), the target the "ref" side.
//   refused (InputError, exit 2)  different /inputs, or configs that describe different models;
//   one side only                 a hook only one dump holds fails, unless a budget [[one_side]]
//                                 entry allows it (then skipped, with its reason);
//   mixed dtypes                  a hook stored in two float dtypes is also compared after rounding
//                                 both sides to the lower precision, beside the floor that rounding
//                                 alone costs (a bf16 noise floor told apart from a bug); the gate
//                                 uses the raw metric;
//   noise floor                   the built-in default gates each difference against the compare
//                                 floor (run/compare_floor.h), with a fixed fallback where there is
//                                 none; router near-ties (by either dump's scores or the floor's
//                                 drift) are counted, listed, and left out of top_k_weights;
//   three-way                     at every float and top-k hook, the C++ reference is replayed
//                                 isolated on each side's own inputs, saying which side departs
//                                 from it; a hook whose difference passes fails where one does
//                                 (run/three_way.h).
// The gradients of two gradient dumps: run/grad_compare.h (`parity compare --grad`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "run/check.h"
#include "run/three_way.h"

namespace parity::harness {

struct CompareOptions {
  std::string hooks_glob;                 // "" = every hook
  bool reference = true;                  // the noise floor and the three-way replay (--no-reference: off)
  const WeightSource* weights = nullptr;  // --weights: replay both sides with these; else each side's
                                          // own /weights, else the other side's
  // What judges each side's own replay (its [isolated] section); nullptr: the built-in budget of
  // that side's run dtype (a float32 base at rel_l2 1e-5, a bfloat16 target at 2 x its noise floor).
  const Budget* isolated_budget = nullptr;
  const Budget* grad_isolated_budget = nullptr;  // the same for a gradient compare's [grad.isolated]
  // What the plan's other run compares (the gradient names beside a forward compare, the forward
  // keys beside a gradient one): a skip or one_side entry that matches one of them is used there.
  std::vector<std::string> elsewhere;
};

CheckReport run_compare(const Fixture& base, const Fixture& target, const Budget& budget,
                        const CompareOptions& options);

// The budget without --budget: the built-in one for the two runs' dtype, or for the lower
// precision of the two ("bfloat16" for a float32 base and a bfloat16 target).
Budget builtin_compare_budget(const Fixture& base, const Fixture& target);
// That run dtype ("bfloat16" for a float32 base and a bfloat16 target); "" when there is none.
std::string compare_run_dtype(const Fixture& base, const Fixture& target);

// InputError naming both files and the first difference: /inputs (input_ids, attention_mask,
// position_ids) that differ, or configs that describe different models (compared as the reference
// resolves them; for a model_type without a reference, as raw JSON minus keys that do not change
// the model: dtype, torch_dtype, transformers_version, use_cache and "_"-prefixed keys).
void check_same_inputs(const Fixture& base, const Fixture& target);
void check_same_model(const Fixture& base, const Fixture& target);

// --- pure helpers (compare_test.cpp) ------------------------------------------------------------

// The dtype both sides of a mixed pair are rounded to: the one with fewer mantissa bits (float64 >
// float32 > float16, bfloat16). nullopt when the dtypes are equal, not both floating, or float16
// against bfloatf16 (neither holds the other).
std::optional<DType> lower_precision_of(DType a, DType b);
// Round to nearest even in `dtype`, as torch's .to(); finite values beyond its range saturate at its
// largest finite value (HF's masks hold each dtype's own finfo.min, which rounding would make -inf).
std::vector<double> round_to(const std::vector<double>& values, DType dtype);
// Both sides rounded to the lower precision, and the higher side's own representation floor.
LowerPrecision lower_precision_metrics(const std::vector<double>& target, DType target_dtype,
                                       const std::vector<double>& base, DType base_dtype);

// Every key of both dumps in forward order: the base's order, each target-only key right after the
// key the target holds before it (or first).
struct KeyPlace {
  std::string key;
  bool in_base = false, in_target = false;
};
std::vector<KeyPlace> merge_keys(const std::vector<std::string>& base, const std::vector<std::string>& target);

}  // namespace parity::harness
