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

}  // namespace parity
