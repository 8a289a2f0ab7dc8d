// The activations the two families use, by their HF config names (hidden_act / hidden_activation):
//   "silu"              x · sigmoid(x)                                  (SiLUActivation)
//   "gelu_pytorch_tanh" 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))     (GELUTanh)
// torch computes both in float32 internally for bf16 inputs; the result is cast to T.
#pragma once

#include <string>

#include "numerics.h"

namespace parity::ops {

enum class Activation { kSilu, kGeluTanh };

Activation activation_from_hf(const std::string& name);  // throws on names the reference lacks
double activate(Activation activation, double x, const Numerics& numerics);

// d activate / dx at the exact math: silu' = σ(x)·(1 + x·(1 − σ(x))); gelu_tanh' = ½(1 + t) +
// ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh(√(2/π)(x + 0.044715x³)).
double activate_derivative(Activation activation, double x);

}  // namespace parity::ops
