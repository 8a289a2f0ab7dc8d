#include "gate/tensor_metrics.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace parity::harness {

namespace {

void count_nonfinite(double x, int64_t& nan, int64_t& inf) {
  if (std::isnan(x)) ++nan;
  else if (std::isinf(x)) ++inf;
}

// A new maximum: the first element, a larger value, or the first NaN (a NaN outranks everything).
bool worse(double value, double current, int64_t current_index) {
  if (current_index < 0) return true;
  if (std::isnan(current)) return false;
  return std::isnan(value) || value > current;
}

// Ranks NaN above every number, so a NaN element is always listed among the worst.
double rank_key(double abs_diff) { return std::isnan(abs_diff) ? INFINITY : abs_diff; }

// Keeps `worst` the kWorstElements largest differences, largest first (a handful: insertion is cheapest).
void keep_worst(std::vector<ElementDiff>& worst, const ElementDiff& e) {
  const double key = rank_key(e.abs_diff());
  if (worst.size() == kWorstElements && key <= rank_key(worst.back().abs_diff())) return;
  auto at = std::find_if(worst.begin(), worst.end(), [&](const ElementDiff& w) { return key > rank_key(w.abs_diff()); });
  worst.insert(at, e);
  if (worst.size() > kWorstElements) worst.pop_back();
}

}  // namespace

double ElementDiff::abs_diff() const { return std::abs(ref - hf); }

FloatMetrics compare_floats(std::span<const double> ref, std::span<const double> hf) {
  PARITY_CHECK(ref.size() == hf.size(), "[metrics] {} reference values vs {} HF values", ref.size(), hf.size());
  FloatMetrics m;
  m.count = static_cast<int64_t>(ref.size());
  double diff_sq = 0, hf_sq = 0, ref_sq = 0, dot = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    count_nonfinite(ref[i], m.ref_nan, m.ref_inf);
    count_nonfinite(hf[i], m.hf_nan, m.hf_inf);
    const double d = ref[i] - hf[i];
    diff_sq += d * d;
    hf_sq += hf[i] * hf[i];
    ref_sq += ref[i] * ref[i];
    dot += ref[i] * hf[i];
    if (worse(std::abs(d), m.max_abs, m.max_abs_index)) {
      m.max_abs = std::abs(d);
      m.max_abs_index = static_cast<int64_t>(i);
      m.ref_at_max = ref[i];
      m.hf_at_max = hf[i];
    }
    keep_worst(m.worst, {static_cast<int64_t>(i), ref[i], hf[i]});
  }
  m.hf_l2 = std::sqrt(hf_sq);
  m.ref_l2 = std::sqrt(ref_sq);
  // 0/0 (both all zero) is a perfect match; anything over a zero HF norm is an infinite error.
  m.rel_l2 = diff_sq == 0 ? 0 : (hf_sq == 0 ? INFINITY : std::sqrt(diff_sq) / m.hf_l2);
  m.cosine = (ref_sq == 0 && hf_sq == 0) ? 1 : (ref_sq == 0 || hf_sq == 0) ? 0 : dot / (m.ref_l2 * m.hf_l2);
  m.max_rel_floor = m.count ? kMaxRelFloor * m.hf_l2 / std::sqrt(static_cast<double>(m.count)) : 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double denom = std::max(std::abs(hf[i]), m.max_rel_floor);
    const double rel = denom == 0 ? (ref[i] == hf[i] ? 0 : INFINITY) : std::abs(ref[i] - hf[i]) / denom;
    if (worse(rel, m.max_rel, m.max_rel_index)) {
      m.max_rel = rel;
      m.max_rel_index = static_cast<int64_t>(i);
    }
  }
  return m;
}

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> coord(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) return coord;
    coord[d] = flat % shape[d];
    flat /= shape[d];
  }
  return coord;
}

namespace {

std::set<int64_t> row_set(const IndexArray& a, int64_t t) {
  const int64_t k = a.shape[1];
  return {a.data.begin() + t * k, a.data.begin() + (t + 1) * k};
}

std::vector<int64_t> symmetric_difference(const std::set<int64_t>& a, const std::set<int64_t>& b) {
  std::vector<int64_t> diff;
  std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
  return diff;
}

double score_of(const Array& scores, int64_t t, int64_t e) {
  return (e >= 0 && e < scores.last_dim()) ? scores.row(t)[e] : NAN;
}

// The lowest and highest score of the swapped experts on token t (NaN or inf when one is not finite).
std::pair<double, double> swap_range(const Array& scores, int64_t t, const std::vector<int64_t>& diff) {
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t e : diff) {
    lo = std::min(lo, score_of(scores, t, e));
    hi = std::max(hi, score_of(scores, t, e));
  }
  return {lo, hi};
}

// The swapped experts' scores lie within near_tie_rel of each other (relative to the largest).
bool is_near_tie(const Array& scores, int64_t t, const std::vector<int64_t>& diff, double near_tie_rel) {
  const auto [lo, hi] = swap_range(scores, t, diff);
  return std::isfinite(lo) && std::isfinite(hi) && hi - lo <= near_tie_rel * std::abs(hi);
}

// The swap lies within the drift the noise floor shows on token t (FloorTie).
bool is_floor_tie(const Array& scores, int64_t t, const std::vector<int64_t>& diff, const FloorTie& floor) {
  if (!floor.scores || floor.scores->shape != scores.shape) return false;
  double drift = 0;
  for (int64_t e = 0; e < scores.last_dim(); ++e) {
    const double d = std::abs(scores.row(t)[e] - floor.scores->row(t)[e]);
    if (!std::isfinite(d)) return false;
    drift = std::max(drift, d);
  }
  const auto [lo, hi] = swap_range(scores, t, diff);
  return std::isfinite(lo) && std::isfinite(hi) && hi - lo <= floor.factor * drift;
}

void check_top_k_shapes(const IndexArray& ref, const IndexArray& hf, const Array& scores) {
  PARITY_CHECK(ref.shape == hf.shape && ref.shape.size() == 2, "[metrics] top-k shapes differ: ref {} vs hf {}",
               shape_str(ref.shape), shape_str(hf.shape));
  PARITY_CHECK(scores.rows() == ref.shape[0], "[metrics] {} score rows for {} tokens", scores.rows(), ref.shape[0]);
}

}  // namespace

TopKMetrics compare_top_k(const IndexArray& ref, const IndexArray& hf, const Array& scores, double near_tie_rel,
                          const Array* other_scores, const FloorTie& floor) {
  check_top_k_shapes(ref, hf, scores);
  if (other_scores) check_top_k_shapes(ref, hf, *other_scores);
  TopKMetrics m;
  m.tokens = ref.shape[0];
  for (int64_t t = 0; t < m.tokens; ++t) {
    const std::set<int64_t> r = row_set(ref, t), h = row_set(hf, t);
    if (r == h) continue;
    const std::vector<int64_t> diff = symmetric_difference(r, h);
    const bool near_tie = is_near_tie(scores, t, diff, near_tie_rel) ||
                          (other_scores && is_near_tie(*other_scores, t, diff, near_tie_rel)) ||
                          is_floor_tie(scores, t, diff, floor);
    near_tie ? ++m.near_ties : ++m.differ;
    if (near_tie) m.near_tie_tokens.push_back(t);
    if (m.first_token >= 0 && (near_tie || m.differ > 1)) continue;  // keep the first real difference
    m.first_token = t;
    std::vector<std::string> s;
    for (int64_t e : diff) s.push_back(fmt::format("e{}={:.9g}", e, score_of(scores, t, e)));
    m.first_detail = fmt::format("token {}: ref {{{}}} hf {{{}}}, reference scores {}{}", t, fmt::join(r, ", "),
                                 fmt::join(h, ", "), fmt::join(s, " "), near_tie ? " (near-tie)" : "");
  }
  return m;
}

IndexArray resolve_near_ties(const IndexArray& own, const IndexArray& hf, const Array& scores, double near_tie_rel,
                             const FloorTie& floor) {
  check_top_k_shapes(own, hf, scores);
  IndexArray out = own;
  const int64_t k = own.shape[1];
  for (int64_t t = 0; t < own.shape[0]; ++t) {
    const std::set<int64_t> r = row_set(own, t), h = row_set(hf, t);
    if (r == h) continue;
    const std::vector<int64_t> diff = symmetric_difference(r, h);
    if (is_near_tie(scores, t, diff, near_tie_rel) || is_floor_tie(scores, t, diff, floor))
      std::copy_n(hf.data.begin() + t * k, k, out.data.begin() + t * k);
  }
  return out;
}

Array align_top_k_weights(const Array& ref_weights, const IndexArray& ref_index, const IndexArray& hf_index) {
  PARITY_CHECK(ref_weights.shape == ref_index.shape && ref_index.shape == hf_index.shape,
               "[metrics] top-k weights {} / index {} / HF index {} shapes differ", shape_str(ref_weights.shape),
               shape_str(ref_index.shape), shape_str(hf_index.shape));
  Array out = ref_weights;
  const int64_t k = ref_index.shape.size() == 2 ? ref_index.shape[1] : 0;
  for (int64_t t = 0; k > 0 && t < ref_index.shape[0]; ++t)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < k; ++i)
        if (ref_index.data[t * k + i] == hf_index.data[t * k + j]) out.row(t)[j] = ref_weights.row(t)[i];
  return out;
}

}  // namespace parity::harness
