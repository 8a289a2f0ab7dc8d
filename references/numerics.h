// Numerics: where HF rounds. The reference computes in f64 and accumulates every reduction in f64;
// a Numerics object decides what happens at each of HF's cast points:
//   act(x)  HF casts to the activation dtype T (the run's dtype: float32 or bfloat16), e.g. the
//           output of every Linear, the `.to(input_dtype)` at the end of a norm;
//   f32(x)  HF computes this value in float32 whatever T is, e.g. a norm's variance, the softmax.
// Precision::F64 keeps both exact (the math itself, the reference's "third opinion");
// Precision::F32 rounds both to float (HF's fp32 cast points); Precision::BF16 rounds act() to
// bfloat16 and f32() to float (HF's bf16 cast points), so a bf16 run can be matched bit-closely.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "array.h"

namespace parity {

enum class Precision { F64, F32, BF16 };

std::string_view precision_name(Precision precision);
std::optional<Precision> precision_from_name(std::string_view name);  // "f64", "f32", "bf16"
// The precision that reproduces a run made in `dtype` ("float32" -> F32, "bfloat16" -> BF16).
std::optional<Precision> precision_for_run_dtype(std::string_view dtype);

// How sums accumulate: kExact in f64 (the reference, always); kFloat in float, as an engine that
// computes in the run's dtype does (sgemm; pairwise float sums in norms and softmax). A kFloat
// model is never what the gate compares HF against: it is the second opinion that measures the
// noise floor (harness/run/noise_floor.h): how far two correct implementations at the run's cast
// points, differing only in how they accumulate, drift apart on these inputs.
enum class Accumulation { kExact, kFloat };

// How act_sum() rounds to bfloat16: kNearest as HF (round to nearest even); kFlipNearMidpoints is
// the bf16 second opinion's "one-ulp roundings": a reduction's result within bf16_flip_window(n) x
// |x| of the midpoint between its two bf16 neighbours goes to the other neighbour. An engine's
// float sums of n terms put such a value on either side of the midpoint (their error is of that
// size), so the flip is a rounding a correct engine may make; float accumulation alone flips too
// few of them to measure a bf16 floor. Only a reduction's result flips (act_sum): an elementwise op
// on bf16 operands is computed exactly in float and rounds the same in every engine, and f32
// roundings are the float accumulation's own.
enum class Rounding { kNearest, kFlipNearMidpoints };
// The relative error of a float sum of n terms of mixed sign: about 2^-24 x sqrt(n) (a random walk
// of n float roundings, relative to a result of the size of one term times sqrt(n)). Measured on
// the golden and unseen bf16 dumps (ci/measure_noise_floor.py; docs/budgets.md "Noise floor"):
// every window from 2^-22 to 2^-20 at their reduction lengths (24 to 512) leaves the clean hooks
// within their budget, 2^-24 does not.
double bf16_flip_window(int64_t terms);

class Numerics {
 public:
  explicit Numerics(Precision precision = Precision::F64, Accumulation accumulation = Accumulation::kExact,
                    Rounding rounding = Rounding::kNearest)
      : precision_(precision), accumulation_(accumulation), rounding_(rounding) {}
  Precision precision() const { return precision_; }
  Accumulation accumulation() const { return accumulation_; }
  Rounding rounding() const { return rounding_; }
  bool float_sums() const { return accumulation_ == Accumulation::kFloat; }
  // The sum of n terms: in f64, or with float_sums() pairwise in float (torch's reductions are
  // blocked and pairwise; a sequential float sum would overstate the error on long rows).
  double sum(const double* terms, int64_t n) const;

  double act(double x) const;
  double f32(double x) const;
  void act(Array& a) const;
  // act() of a value that came out of a reduction of `terms` terms (a matmul over K, a norm's
  // rsqrt of a sum over its row, a softmax over its row): the same rounding, except that the bf16
  // second opinion may flip it (Rounding).
  double act_sum(double x, int64_t terms) const;
  void act_sum(Array& a, int64_t terms) const;
  void f32(Array& a) const;

 private:
  Precision precision_;
  Accumulation accumulation_;
  Rounding rounding_;
};

// x rounded to bfloat16 as rounding says (kFlipNearMidpoints: flipped within window x |x| of a
// midpoint, see Rounding), widened back.
double round_bf16(double x, Rounding rounding, double window = 0);

}  // namespace parity
