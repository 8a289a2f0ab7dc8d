#include "numerics.h"

#include <cmath>
#include <cstring>
#include <algorithm>

namespace parity {

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::F64: return "f64";
    case Precision::F32: return "f32";
    case Precision::BF16: return "bf16";
  }
  return "unknown";
}

std::optional<Precision> precision_from_name(std::string_view name) {
  for (Precision p : {Precision::F64, Precision::F32, Precision::BF16})
    if (precision_name(p) == name) return p;
  return std::nullopt;
}

std::optional<Precision> precision_for_run_dtype(std::string_view dtype) {
  if (dtype == "float32") return Precision::F32;
  if (dtype == "bfloat16") return Precision::BF16;
  return std::nullopt;
}

double bf16_flip_window(int64_t terms) { return 0x1p-24 * std::sqrt(static_cast<double>(std::max<int64_t>(terms, 1))); }

double round_bf16(double x, Rounding rounding, double window) {
  const double nearest = bf16_to_f32(f32_to_bf16(static_cast<float>(x)));
  if (rounding == Rounding::kNearest || !std::isfinite(nearest) || x == nearest) return nearest;
  // The two bf16 neighbours of x: truncated toward zero, and one bf16 ulp further out.
  const float f = static_cast<float>(x);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t inner_bits = bits & 0xFFFF0000u, outer_bits = inner_bits + 0x10000u;
  float inner, outer;
  std::memcpy(&inner, &inner_bits, sizeof inner);
  std::memcpy(&outer, &outer_bits, sizeof outer);
  if (!std::isfinite(outer)) return nearest;
  const double midpoint = (static_cast<double>(inner) + static_cast<double>(outer)) / 2;
  if (std::abs(x - midpoint) > window * std::abs(x)) return nearest;
  return nearest == inner ? outer : inner;
}

double Numerics::act_sum(double x, int64_t terms) const {
  return precision_ == Precision::BF16 ? round_bf16(x, rounding_, bf16_flip_window(terms)) : act(x);
}

void Numerics::act_sum(Array& a, int64_t terms) const {
  if (precision_ == Precision::F64) return;
  const double window = bf16_flip_window(terms);
  for (double& x : a.data) x = precision_ == Precision::BF16 ? round_bf16(x, rounding_, window) : act(x);
}

double Numerics::act(double x) const {
  switch (precision_) {
    case Precision::F64: return x;
    case Precision::F32: return static_cast<float>(x);
    case Precision::BF16: return round_bf16(x, Rounding::kNearest);
  }
  return x;
}

double Numerics::f32(double x) const { return precision_ == Precision::F64 ? x : static_cast<float>(x); }

void Numerics::act(Array& a) const {
  if (precision_ == Precision::F64) return;
  for (double& x : a.data) x = act(x);
}

void Numerics::f32(Array& a) const {
  if (precision_ == Precision::F64) return;
  for (double& x : a.data) x = f32(x);
}

namespace {

// Pairwise in float over blocks of 8 summed sequentially: the shape of torch's vectorised reduction.
float pairwise_float_sum(const double* terms, int64_t n) {
  if (n <= 8) {
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<float>(terms[i]);
    return s;
  }
  const int64_t half = n / 2;
  return pairwise_float_sum(terms, half) + pairwise_float_sum(terms + half, n - half);
}

}  // namespace

double Numerics::sum(const double* terms, int64_t n) const {
  if (float_sums()) return pairwise_float_sum(terms, n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += terms[i];
  return s;
}

}  // namespace parity
