#include "run/compare.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/fixture_sources.h"
#include "run/compare_floor.h"
#include "run/hook_gate.h"
#include "gate/json_difference.h"
#include "models/model.h"

namespace parity::harness {

namespace {

constexpr const char* kBase = "base";
constexpr const char* kTarget = "target";
constexpr double kBf16Max = 3.38953138925153547590e38;  // 0x7f7f: bfloat16's largest finite value
constexpr double kF16Max = 65504;

std::string pair_name(const Fixture& base, const Fixture& target) {
  return fmt::format("compare {} vs {}", base.path().string(), target.path().string());
}

int mantissa_bits(DType dtype) {
  switch (dtype) {
    case DType::F64: return 52;
    case DType::F32: return 23;
    case DType::F16: return 10;
    case DType::BF16: return 7;
    default: return -1;
  }
}

double round_one(double x, DType dtype) {
  if (!std::isfinite(x)) return x;
  switch (dtype) {
    case DType::F32: return static_cast<float>(std::clamp(x, -double{FLT_MAX}, double{FLT_MAX}));
    case DType::BF16: {
      // Via float (exact for a float32 side; a float64 side may round twice, off by one ulp at a tie).
      const float wide = static_cast<float>(std::clamp(x, -double{FLT_MAX}, double{FLT_MAX}));
      const double r = bf16_to_f32(f32_to_bf16(wide));
      return std::isinf(r) ? std::copysign(kBf16Max, r) : r;
    }
    case DType::F16: return round_to_f16(std::clamp(x, -kF16Max, kF16Max));
    default: return x;
  }
}

std::string coordinate(int64_t flat, const Shape& shape) {
  return fmt::format("[{}]", fmt::join(unravel(flat, shape), ", "));
}

std::set<int64_t> row_set(const IndexArray& a, int64_t t) {
  const int64_t k = a.shape[1];
  return {a.data.begin() + t * k, a.data.begin() + (t + 1) * k};
}

// Compares one key of both dumps.
class Comparer {
 public:
  Comparer(const Fixture& base, const Fixture& target, const Budget& budget, const CompareFloor& floor)
      : base_(base), target_(target), budget_(budget), floor_(floor) {}

  HookResult compare(const KeyPlace& place) const {
    HookResult r;
    r.hook = place.key;
    const FixtureKey where = fixture_key(place.key);
    const Fixture& holder = place.in_base ? base_ : target_;
    r.shape = holder.info(where.group, where.name).shape;
    if (apply_skip(r, budget_)) return r;
    if (!place.in_base || !place.in_target) {
      const char* side = place.in_base ? kBase : kTarget;
      if (const Skip* s = budget_.one_side_for(place.key)) {
        r.status = Status::kSkipped;
        r.message = fmt::format("only in the {}: allowed: {} ({})", side, s->reason, s->where);
      } else {
        r.message = fmt::format("only in the {}: the {} has no such hook", side, place.in_base ? kTarget : kBase);
      }
      return r;
    }
    const DatasetInfo b = base_.info(where.group, where.name), t = target_.info(where.group, where.name);
    const bool top_k = !is_floating(b.dtype) && b.shape.size() == 2 && routed_by(place.key, b, "@top_k_index");
    r.is_top_k = top_k;
    assign_limit(r, budget_, Mode::kCompare);
    if (is_floating(b.dtype) != is_floating(t.dtype)) {
      r.message =
          fmt::format("kind mismatch: the base holds {}, the target {}", dtype_name(b.dtype), dtype_name(t.dtype));
    } else if (b.shape != t.shape) {
      r.message = shape_mismatch(t.shape, b.shape, kCompareSides);
    } else if (top_k) {
      compare_top_k_sets(r, where, b);
    } else if (!is_floating(b.dtype)) {
      compare_exactly(r, where);
    } else {
      compare_float_tensors(r, where, b, t);
    }
    return r;
  }

 private:
  // The router whose `slot` ("@top_k_index", "@top_k_weights") this key is: its own slot, or (a
  // module input such as experts@in1) a soft link the base dump made to one.
  static std::optional<std::string> routed_by(const std::string& key, const DatasetInfo& base_info,
                                              std::string_view slot) {
    if (key.ends_with(slot)) return key.substr(0, key.rfind('@'));
    const std::string& link = base_info.link_target;
    if (link.starts_with("/hooks/") && link.ends_with(slot)) return link.substr(7, link.rfind('@') - 7);
    return std::nullopt;
  }

  std::optional<IndexArray> index_of(const Fixture& fixture, const std::string& router, const Shape& shape) const {
    const std::string key = router + "@top_k_index";
    if (!fixture.has("hooks", key)) return std::nullopt;
    const DatasetInfo info = fixture.info("hooks", key);
    if (is_floating(info.dtype) || info.shape != shape) return std::nullopt;
    return to_index_array(fixture.read("hooks", key), key);
  }

  // A dump's router scores [T, E] (its @router_probs, else the router's own output), for near-ties.
  static std::optional<std::pair<std::string, Array>> router_scores(const Fixture& dump, const std::string& router,
                                                                    const IndexArray& index) {
    const int64_t tokens = index.shape[0];
    const int64_t top = index.data.empty() ? 0 : *std::max_element(index.data.begin(), index.data.end());
    for (const std::string& key : {router + "@router_probs", router}) {
      if (!dump.has("hooks", key)) continue;
      const DatasetInfo info = dump.info("hooks", key);
      if (is_floating(info.dtype) && info.shape.size() == 2 && info.shape[0] == tokens && info.shape[1] > top)
        return std::make_pair(key, to_array(dump.read("hooks", key), key));
    }
    return std::nullopt;
  }

  // Both dumps' choice of `router` compared: routing failures and near-ties by token. `scores` gets
  // the scores the near-ties were judged by (the base's, else the target's), if any.
  TopKMetrics router_top_k(const std::string& router, const IndexArray& base, const IndexArray& target,
                           std::optional<std::pair<std::string, Array>>* scores_used = nullptr,
                           const char** scored_by = nullptr) const {
    // A near-tie by either dump's scores is one, so the verdict does not depend on the argument order.
    const auto base_scores = router_scores(base_, router, base), target_scores = router_scores(target_, router, target);
    const auto& scores = base_scores ? base_scores : target_scores;
    if (scores_used) *scores_used = scores;
    if (scored_by) *scored_by = base_scores ? kBase : kTarget;
    // Without scores nothing is a near-tie: a [T, 1] NaN column scores every expert NaN.
    const Array none(Shape{base.shape[0], 1}, std::vector<double>(base.shape[0], NAN));
    const std::optional<Array> drifted = scores ? floor_drifted(scores->first, scores->second) : std::nullopt;
    const FloorTie tie = drifted ? FloorTie{&*drifted, budget_.near_tie_floor_ratio} : FloorTie{};
    return compare_top_k(target, base, scores ? scores->second : none, budget_.near_tie_rel,
                         base_scores && target_scores ? &target_scores->second : nullptr, tie);
  }

  // `scores` (a dump's router scores, hook `key`) moved by the drift the noise floor's two forwards
  // show there (target side minus base side): as a FloorTie, a swap between experts whose scores lie
  // within the drift two correct implementations at these precisions make is a near-tie, as in
  // check (run/check.cpp FollowHfTies). None without a floor of that shape.
  std::optional<Array> floor_drifted(const std::string& key, const Array& scores) const {
    const auto fb = floor_.base.find(key), ft = floor_.target.find(key);
    if (fb == floor_.base.end() || ft == floor_.target.end() || fb->second.shape != scores.shape ||
        ft->second.shape != scores.shape)
      return std::nullopt;
    Array drifted = scores;
    for (size_t i = 0; i < drifted.data.size(); ++i) drifted.data[i] += ft->second.data[i] - fb->second.data[i];
    return drifted;
  }

  void compare_top_k_sets(HookResult& r, const FixtureKey& where, const DatasetInfo& b) const {
    const IndexArray base = to_index_array(base_.read(where.group, where.name), r.hook);
    const IndexArray target = to_index_array(target_.read(where.group, where.name), r.hook);
    const std::string router = *routed_by(r.hook, b, "@top_k_index");
    std::optional<std::pair<std::string, Array>> scores;
    const char* scored_by = kBase;
    r.top_k = router_top_k(router, base, target, &scores, &scored_by);
    TopKMetrics& m = *r.top_k;
    if (m.first_token >= 0) {
      const int64_t t = m.first_token;
      const std::set<int64_t> ts = row_set(target, t), bs = row_set(base, t);
      std::vector<int64_t> diff;
      std::set_symmetric_difference(ts.begin(), ts.end(), bs.begin(), bs.end(), std::back_inserter(diff));
      std::vector<std::string> s;
      if (scores)
        for (int64_t e : diff) {
          const Array& a = scores->second;
          s.push_back(fmt::format("e{}={:.9g}", e, e >= 0 && e < a.last_dim() ? a.row(t)[e] : NAN));
        }
      m.first_detail = fmt::format("token {}: target {{{}}} base {{{}}}, {}{}", t, fmt::join(ts, ", "),
                                   fmt::join(bs, ", "),
                                   scores ? fmt::format("{} scores ({}) {}", scored_by, scores->first, fmt::join(s, " "))
                                          : fmt::format("no near-tie allowance (neither dump has router scores "
                                                        "{}@router_probs)", router),
                                   m.differ == 0 ? " (near-tie)" : "");
    }
    gate_top_k(r, std::move(m));
  }

  // Integer tensors other than top-k indices (token ids, positions) must be equal.
  void compare_exactly(HookResult& r, const FixtureKey& where) const {
    const Tensor base = base_.read(where.group, where.name), target = target_.read(where.group, where.name);
    const std::vector<int64_t>& b = base.ints();
    const std::vector<int64_t>& t = target.ints();
    r.limit = Limit{Metric::kMaxAbs, 0};
    r.budget_rule = "exact (integer tensor)";
    r.floats = compare_floats(std::vector<double>(t.begin(), t.end()), std::vector<double>(b.begin(), b.end()));
    if (r.floats->count == 0) {
      r.message = "empty comparison: the tensor has no elements";
      return;
    }
    r.gate(r.floats->max_abs);
    if (r.status == Status::kPass) return;
    const auto first = std::mismatch(b.begin(), b.end(), t.begin()).first - b.begin();
    r.message = fmt::format("integer tensors differ: {} of {} elements; first at {}: target {} vs base {}",
                            std::inner_product(b.begin(), b.end(), t.begin(), int64_t{0}, std::plus<>(),
                                               std::not_equal_to<>()),
                            b.size(), coordinate(first, r.shape), t[first], b[first]);
  }

  void compare_float_tensors(HookResult& r, const FixtureKey& where, const DatasetInfo& b, const DatasetInfo& t) const {
    std::vector<double> base = base_.read(where.group, where.name).to_f64();
    std::vector<double> target = target_.read(where.group, where.name).to_f64();
    std::optional<std::vector<double>> floor_base, floor_target;
    // A module input the dump links to its producer's output has that hook's floor.
    const std::string floor_key =
        b.link_target.starts_with("/hooks/") ? b.link_target.substr(std::string_view("/hooks/").size()) : r.hook;
    if (auto fb = floor_.base.find(floor_key), ft = floor_.target.find(floor_key);
        fb != floor_.base.end() && ft != floor_.target.end() && fb->second.shape == b.shape &&
        ft->second.shape == t.shape)
      floor_base = fb->second.data, floor_target = ft->second.data;
    // Top-k weights follow their experts: the target's aligned on the base's indices (the order of
    // the k slots can differ when two selected experts score almost alike), and a token whose
    // experts differ only at a near-tie is left out (its weights belong to other experts).
    if (const auto router = routed_by(r.hook, b, "@top_k_weights"); router && b.shape.size() == 2) {
      const auto bi = index_of(base_, *router, b.shape), ti = index_of(target_, *router, b.shape);
      if (bi && ti) {
        target = align_top_k_weights(Array(t.shape, std::move(target)), *ti, *bi).data;
        const std::vector<int64_t> ties = router_top_k(*router, *bi, *ti).near_tie_tokens;
        if (floor_base) {
          auto fbi = floor_.base_index.find(*router), fti = floor_.target_index.find(*router);
          if (fbi != floor_.base_index.end() && fti != floor_.target_index.end() && fti->second.shape == t.shape &&
              fbi->second.shape == b.shape)
            floor_target = align_top_k_weights(Array(t.shape, std::move(*floor_target)), fti->second, fbi->second).data;
          else
            floor_base.reset(), floor_target.reset();
        }
        if (!ties.empty()) {
          const int64_t k = b.shape[1];
          for (auto* v : {&base, &target}) *v = without_rows(*v, ties, k);
          if (floor_base) *floor_base = without_rows(*floor_base, ties, k), *floor_target = without_rows(*floor_target, ties, k);
          // The first few by number: a real run can have thousands (the JSON's near_tie_tokens lists all).
          const std::vector<int64_t> shown(ties.begin(), ties.begin() + std::min<size_t>(ties.size(), 8));
          r.note = fmt::format("{} near-tie token(s) left out (their experts differ): {}{}", ties.size(),
                               fmt::join(shown, ", "), ties.size() > shown.size() ? ", ..." : "");
        }
      }
    }
    if (floor_base) r.floor = compare_floats(*floor_target, *floor_base);
    else use_no_floor_default(r, budget_, Mode::kCompare);
    gate_floats(r, compare_floats(target, base), kCompareSides);
    if (r.measured && lower_precision_of(t.dtype, b.dtype))
      r.lower_precision = lower_precision_metrics(target, t.dtype, base, b.dtype);
  }

  // The rows of a [T, k] tensor (flat) but `tokens` (ascending).
  static std::vector<double> without_rows(const std::vector<double>& v, const std::vector<int64_t>& tokens, int64_t k) {
    std::vector<double> out;
    out.reserve(v.size());
    size_t next = 0;
    for (int64_t t = 0; t * k < static_cast<int64_t>(v.size()); ++t) {
      if (next < tokens.size() && tokens[next] == t) {
        ++next;
        continue;
      }
      out.insert(out.end(), v.begin() + t * k, v.begin() + (t + 1) * k);
    }
    return out;
  }

  const Fixture& base_;
  const Fixture& target_;
  const Budget& budget_;
  const CompareFloor& floor_;
};


// The dtype the gate assumes: the runs' dtype, or the lower precision of the two.
std::optional<std::string> gate_dtype(const std::string& base, const std::string& target) {
  if (base == target) return base;
  const std::optional<DType> b = dtype_from_name(base), t = dtype_from_name(target);
  if (!b || !t) return std::nullopt;
  const std::optional<DType> lower = lower_precision_of(*b, *t);
  if (!lower) return std::nullopt;
  return std::string(dtype_name(*lower));
}

}  // namespace

std::optional<DType> lower_precision_of(DType a, DType b) {
  if (!is_floating(a) || !is_floating(b) || a == b) return std::nullopt;
  if (mantissa_bits(a) <= 10 && mantissa_bits(b) <= 10) return std::nullopt;  // float16 vs bfloat16
  return mantissa_bits(a) < mantissa_bits(b) ? a : b;
}

std::vector<double> round_to(const std::vector<double>& values, DType dtype) {
  std::vector<double> out(values.size());
  std::transform(values.begin(), values.end(), out.begin(), [&](double x) { return round_one(x, dtype); });
  return out;
}

LowerPrecision lower_precision_metrics(const std::vector<double>& target, DType target_dtype,
                                       const std::vector<double>& base, DType base_dtype) {
  const std::optional<DType> lower = lower_precision_of(target_dtype, base_dtype);
  PARITY_CHECK(lower.has_value(), "[compare] {} and {} have no lower precision", dtype_name(target_dtype),
               dtype_name(base_dtype));
  LowerPrecision lp;
  lp.dtype = dtype_name(*lower);
  const bool base_higher = *lower == target_dtype;
  lp.higher_side = base_higher ? kBase : kTarget;
  lp.rel_l2 = compare_floats(round_to(target, *lower), round_to(base, *lower)).rel_l2;
  const std::vector<double>& higher = base_higher ? base : target;
  lp.floor = compare_floats(round_to(higher, *lower), higher).rel_l2;
  return lp;
}

std::vector<KeyPlace> merge_keys(const std::vector<std::string>& base, const std::vector<std::string>& target) {
  std::map<std::string, size_t> base_index;
  for (size_t i = 0; i < base.size(); ++i) base_index.emplace(base[i], i);
  const std::set<std::string> in_target(target.begin(), target.end());
  std::vector<std::vector<std::string>> after(base.size() + 1);  // [0]: before the first base key
  size_t slot = 0;
  for (const std::string& key : target) {
    auto it = base_index.find(key);
    if (it != base_index.end()) slot = it->second + 1;
    else after[slot].push_back(key);
  }
  std::vector<KeyPlace> out;
  for (const std::string& key : after[0]) out.push_back({key, false, true});
  for (size_t i = 0; i < base.size(); ++i) {
    out.push_back({base[i], true, in_target.count(base[i]) > 0});
    for (const std::string& key : after[i + 1]) out.push_back({key, false, true});
  }
  return out;
}

void check_same_inputs(const Fixture& base, const Fixture& target) {
  for (const std::string name : {"input_ids", "attention_mask", "position_ids"}) {
    const bool in_base = base.has("inputs", name), in_target = target.has("inputs", name);
    if (!in_base && !in_target) continue;
    auto refuse = [&](const std::string& what) {
      throw InputError(fmt::format("{}: /inputs/{} differ{}", pair_name(base, target), name, what));
    };
    if (!in_base || !in_target) refuse(fmt::format(": only the {} has it", in_base ? kBase : kTarget));
    const Tensor b = base.read("inputs", name), t = target.read("inputs", name);
    if (is_floating(b.dtype) || is_floating(t.dtype))
      refuse(fmt::format(": {} (base) vs {} (target), expected integers", dtype_name(b.dtype), dtype_name(t.dtype)));
    if (b.shape != t.shape)
      refuse(fmt::format(": shape {} (base) vs {} (target)", shape_str(b.shape), shape_str(t.shape)));
    const auto [bi, ti] = std::mismatch(b.ints().begin(), b.ints().end(), t.ints().begin());
    if (bi != b.ints().end())
      refuse(fmt::format(" at {}: {} (base) vs {} (target)", coordinate(bi - b.ints().begin(), b.shape), *bi, *ti));
  }
}

void check_same_model(const Fixture& base, const Fixture& target) {
  if (const std::optional<JsonDifference> d = model_difference(base.config(), target.config()))
    throw InputError(fmt::format("{}: the configs describe different models: {} = {} (base) vs {} (target)",
                                 pair_name(base, target), d->path.empty() ? "(config)" : d->path, d->ours.dump(),
                                 d->theirs.dump()));
}

std::string compare_run_dtype(const Fixture& base, const Fixture& target) {
  return gate_dtype(base.meta_string("dtype"), target.meta_string("dtype")).value_or("");
}

Budget builtin_compare_budget(const Fixture& base, const Fixture& target) {
  const std::string b = base.meta_string("dtype"), t = target.meta_string("dtype");
  const std::optional<std::string> dtype = gate_dtype(b, t);
  if (!dtype)
    throw InputError(fmt::format("[budget] no built-in budget for a {} base and a {} target; pass --budget", b, t));
  Budget budget = builtin_budget(*dtype);
  if (b != t) budget.source += fmt::format(" (the lower precision of the base's {} and the target's {})", b, t);
  return budget;
}

CheckReport run_compare(const Fixture& base, const Fixture& target, const Budget& budget,
                        const CompareOptions& options) {
  budget.section(Mode::kCompare);  // a budget without [compare] is an input error, before any work
  check_same_model(base, target);
  check_same_inputs(base, target);
  CheckReport report;
  report.fixture = base.path().string();
  report.target = target.path().string();
  report.mode = Mode::kCompare;
  report.ref_side = kTarget;
  report.hf_side = kBase;
  const std::optional<std::string> dtype = gate_dtype(base.meta_string("dtype"), target.meta_string("dtype"));
  report.precision = dtype ? precision_for_run_dtype(*dtype).value_or(Precision::F64) : Precision::F64;
  report.budget_source = budget.source;
  const CompareFloor floor = options.reference ? compare_floor(base, target, options.weights) : CompareFloor{};
  if (!options.reference) report.notes.push_back("noise floor: off (--no-reference)");
  else if (!floor.note.empty()) report.notes.push_back("noise floor: none: " + floor.note);
  const Comparer comparer(base, target, budget, floor);
  std::set<std::string> one_sided;
  for (const KeyPlace& place : merge_keys(comparable_keys(base), comparable_keys(target))) {
    if (!options.hooks_glob.empty() && !glob_match(options.hooks_glob, place.key)) continue;
    if (!place.in_base || !place.in_target) one_sided.insert(place.key);
    HookResult r = comparer.compare(place);
    r.order = static_cast<int64_t>(report.hooks.size());
    report.hooks.push_back(std::move(r));
  }
  // Under --hooks most rules legitimately match nothing.
  if (options.hooks_glob.empty())
    add_unused_budget_entries(budget, Mode::kCompare, report.hooks, report.problems, options.elsewhere, &one_sided);
  if (report.count(Status::kPass) + report.count(Status::kFail) == 0)
    report.problems.push_back("empty comparison: no hook was compared");
  add_three_way(report, base, target, options, Mode::kIsolated);
  return report;
}

}  // namespace parity::harness
