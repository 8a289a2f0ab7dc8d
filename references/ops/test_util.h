// Helpers shared by the ops' doctests: seeded random tensors and a relative comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

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

// <a, b> over all elements.
inline double dot(const Array& a, const Array& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += a.data[i] * b.data[i];
  return s;
}

// Central finite differences of the scalar <dy, f(x)> with respect to each element of x: what a
// backward's input gradient must equal. f64 and a smooth f: the error is O(h²), ~1e-10 relative.
inline std::vector<double> numeric_gradient(const std::function<Array(const Array&)>& f, const Array& x,
                                            const Array& dy, double h = 1e-5) {
  std::vector<double> g(x.data.size());
  Array moved = x;
  for (size_t i = 0; i < g.size(); ++i) {
    const double keep = moved.data[i];
    moved.data[i] = keep + h;
    const double up = dot(dy, f(moved));
    moved.data[i] = keep - h;
    const double down = dot(dy, f(moved));
    moved.data[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// The same for a float weight: each element moved to the floats nearest w ± h, and the difference
// divided by the step the float really took.
inline std::vector<double> numeric_weight_gradient(const std::function<Array(const Weight&)>& f, const Weight& w,
                                                   const Array& dy, double h = 1e-3) {
  std::vector<double> g(w.data.size());
  Weight moved = w;
  for (size_t i = 0; i < g.size(); ++i) {
    const float keep = moved.data[i];
    const float hi = static_cast<float>(keep + h), lo = static_cast<float>(keep - h);
    moved.data[i] = hi;
    const double up = dot(dy, f(moved));
    moved.data[i] = lo;
    const double down = dot(dy, f(moved));
    moved.data[i] = keep;
    g[i] = (up - down) / (static_cast<double>(hi) - static_cast<double>(lo));
  }
  return g;
}

// max |got - want| <= rel x max |want| (and the sizes agree): gradients of mixed magnitude.
inline bool gradient_close(const std::vector<double>& got, const std::vector<double>& want, double rel) {
  if (got.size() != want.size() || want.empty()) return false;
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 && worst <= rel * scale;
}

}  // namespace parity::ops::test
