// Helpers shared by the ops' doctests: seeded random tensors and a relative comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>

#include "array.h"

namespace parity::ops::test {

// Uniform in [lo, hi): activations.
inline Array random_array(Shape shape, std::mt19937& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Array a(std::move(shape));
  for (double& x : a.data) x = dist(rng);
  return a;
}

// Uniform in [lo, hi) as float: weights (norm weights want e.g. [0.5, 1.5)).
inline Weight random_weight(Shape shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Weight w{std::move(shape), {}};
  w.data.resize(static_cast<size_t>(parity::numel(w.shape)));
  for (float& x : w.data) x = dist(rng);
  return w;
}

// |got - want| within rel of max(1, |want|): the naive loops sum in another order.
inline bool close(double got, double want, double rel = 1e-12) {
  return std::abs(got - want) <= rel * std::max(1.0, std::abs(want));
}

}  // namespace parity::ops::test
