#include "numerics.h"

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

double Numerics::act(double x) const {
  switch (precision_) {
    case Precision::F64: return x;
    case Precision::F32: return static_cast<float>(x);
    case Precision::BF16: return bf16_to_f32(f32_to_bf16(static_cast<float>(x)));
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
