// Comparison metrics between a reference tensor and HF's, as the report and budgets name them.
//   rel_l2   ‖ref − hf‖₂ / ‖hf‖₂   (denominator: HF's norm, reported as hf_l2)
//   max_abs  max |ref − hf|, with its flat index and both values there
//   max_rel  max |ref − hf| / max(|hf|, floor), floor = kMaxRelFloor · rms(hf): elements far below
//            the tensor's own scale (near-zero activations) would otherwise dominate
//   cosine   ⟨ref, hf⟩ / (‖ref‖ ‖hf‖)
//   NaN/Inf counts on each side; any of them fails the hook.
// Top-k expert indices are compared as per-token sets (order within the k slots is irrelevant).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "array.h"

namespace parity::harness {

constexpr double kMaxRelFloor = 1e-3;
constexpr size_t kWorstElements = 5;  // elements listed per hook (reports: "worst elements")

// One element of a comparison: its flat index and both values.
struct ElementDiff {
  int64_t index = -1;
  double ref = 0, hf = 0;
  double abs_diff() const;  // NaN when either side is NaN
};

struct FloatMetrics {
  int64_t count = 0;
  double rel_l2 = 0, hf_l2 = 0, ref_l2 = 0;
  double max_abs = 0;
  int64_t max_abs_index = -1;  // flat index; unravel() gives the coordinate
  double ref_at_max = 0, hf_at_max = 0;
  double max_rel = 0;
  int64_t max_rel_index = -1;
  double max_rel_floor = 0;
  double cosine = 1;
  int64_t ref_nan = 0, ref_inf = 0, hf_nan = 0, hf_inf = 0;
  std::vector<ElementDiff> worst;  // the kWorstElements largest |ref − hf| (NaN first), largest first

  bool finite() const { return ref_nan + ref_inf + hf_nan + hf_inf == 0; }
};

// ref and hf must have the same length (the caller checks shapes first). Spans: a numpy array
// (the Python module) is compared in place, without a copy.
FloatMetrics compare_floats(std::span<const double> ref, std::span<const double> hf);

std::vector<int64_t> unravel(int64_t flat, const Shape& shape);

struct TopKMetrics {
  int64_t tokens = 0;
  int64_t differ = 0;     // tokens whose expert set differs beyond a near-tie: a routing failure
  int64_t near_ties = 0;  // tokens whose sets differ only between experts scored within noise
  int64_t first_token = -1;  // first token in `differ` (or, if none, the first near-tie)
  std::vector<int64_t> near_tie_tokens;  // the tokens counted in near_ties, ascending
  std::string first_detail;  // "token 5: ref {1, 3} hf {1, 4}, scores ..."
};

// ref, hf [T, K]; scores [T, E] are the reference's routing scores. A differing token is a
// near-tie when the experts in the symmetric difference have scores within near_tie_rel of each
// other (relative to the largest of them). other_scores [T, E], optional: a second side's scores;
// a token is then a near-tie when either side's scores call it one (parity compare, where neither
// side is the reference, so the verdict must not depend on which dump comes first).
// A near-tie the noise floor explains (run/noise_floor.h): scores [T, E] are the second opinion's
// scores for the same router on the same inputs. A swap is then also a near-tie when the swapped
// experts' scores lie within `factor` x the token's largest |reference − second opinion| score
// difference: the routing flipped by drift that two correct implementations show on this token
// (in a chained run, the accumulated round-off of every layer before it), not by a wrong router.
// No scores: no such allowance.
struct FloorTie {
  const Array* scores = nullptr;
  double factor = 0;
};

TopKMetrics compare_top_k(const IndexArray& ref, const IndexArray& hf, const Array& scores, double near_tie_rel,
                          const Array* other_scores = nullptr, const FloorTie& floor = {});

// own [T, K] with every row whose expert set differs from hf's only by a near-tie replaced by hf's
// row (chained runs follow HF's tie-breaking so one tie cannot cascade through later layers).
IndexArray resolve_near_ties(const IndexArray& own, const IndexArray& hf, const Array& scores, double near_tie_rel,
                             const FloorTie& floor = {});

// Reference top-k weights [T, K] reordered so slot j holds the weight of HF's expert hf[t, j]
// (top-k order can differ when two selected experts score almost alike). Slots whose expert the
// reference did not select keep the reference's own value.
Array align_top_k_weights(const Array& ref_weights, const IndexArray& ref_index, const IndexArray& hf_index);

}  // namespace parity::harness
