#include "activation.h"

#include <cmath>
#include <numbers>

#include "error.h"

namespace parity::ops {

Activation activation_from_hf(const std::string& name) {
  if (name == "silu") return Activation::kSilu;
  if (name == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  throw Error(fmt::format("[config] activation \"{}\" is not implemented by the reference (silu, gelu_pytorch_tanh)",
                          name));
}

double activate(Activation activation, double x, const Numerics& numerics) {
  switch (activation) {
    case Activation::kSilu: return numerics.act(numerics.f32(x / (1.0 + std::exp(-x))));
    case Activation::kGeluTanh: {
      const double inner = std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x);
      return numerics.act(numerics.f32(0.5 * x * (1.0 + std::tanh(inner))));
    }
  }
  return x;
}

}  // namespace parity::ops
