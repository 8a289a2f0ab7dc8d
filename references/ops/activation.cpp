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

double activate_derivative(Activation activation, double x) {
  switch (activation) {
    case Activation::kSilu: {
      const double sigmoid = 1.0 / (1.0 + std::exp(-x));
      return sigmoid * (1.0 + x * (1.0 - sigmoid));
    }
    case Activation::kGeluTanh: {
      const double k = std::sqrt(2.0 / std::numbers::pi);
      const double t = std::tanh(k * (x + 0.044715 * x * x * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
  }
  return 1.0;
}

}  // namespace parity::ops
