#include "norm.h"

#include <cmath>
#include <functional>
#include <vector>

namespace parity::ops {

namespace {

// One row as NormArithmetic::kActivation computes it (weight: nullptr for a weight-less norm).
void rms_norm_row_in_act_dtype(const double* xr, double* yr, int64_t n, const std::function<double(int64_t)>* weight,
                               double eps32, const Numerics& numerics, std::vector<double>& squares) {
  for (int64_t i = 0; i < n; ++i) squares[static_cast<size_t>(i)] = numerics.act(xr[i] * xr[i]);
  const double mean_sq = numerics.act_sum(numerics.sum(squares.data(), n) / static_cast<double>(n), n);
  const double inv_rms = numerics.act(1.0 / numerics.act(std::sqrt(numerics.act(mean_sq + eps32))));
  for (int64_t i = 0; i < n; ++i) {
    const double normed = numerics.act(xr[i] * inv_rms);
    yr[i] = weight ? numerics.act(normed * (*weight)(i)) : normed;
  }
}

}  // namespace

Array rms_norm(const Array& x, const Weight* weight, double eps, NormWeight placement, const Numerics& numerics,
               std::string_view name, double weight_offset, NormArithmetic arithmetic) {
  const int64_t n = x.last_dim();
  PARITY_CHECK(n > 0, "[{}] cannot normalise an empty last dim, input {}", name, shape_str(x.shape));
  if (placement != NormWeight::kNone) {
    PARITY_CHECK(weight != nullptr && weight->shape == Shape{n}, "[{}] weight {} does not match the last dim {}",
                 name, weight ? shape_str(weight->shape) : "missing", n);
  }
  // offset + w, rounded in the dtype the weight is used in; empty without an offset (HF's w).
  std::vector<double> shifted;
  if (placement != NormWeight::kNone && weight_offset != 0.0) {
    shifted.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double w = weight_offset + weight->data[i];
      shifted[static_cast<size_t>(i)] = placement == NormWeight::kAfterCast ? numerics.act(w) : numerics.f32(w);
    }
  }
  auto weight_at = [&](int64_t i) { return shifted.empty() ? static_cast<double>(weight->data[i]) : shifted[static_cast<size_t>(i)]; };
  const double eps32 = numerics.f32(eps);  // torch adds the Python float eps to a float32 tensor
  Array y(x.shape);
  std::vector<double> squares(static_cast<size_t>(n));
  const std::function<double(int64_t)> weight_fn = weight_at;
  for (int64_t r = 0; r < x.rows(); ++r) {
    const double* xr = x.row(r);
    double* yr = y.row(r);
    if (arithmetic == NormArithmetic::kActivation) {
      rms_norm_row_in_act_dtype(xr, yr, n, placement == NormWeight::kNone ? nullptr : &weight_fn, eps32, numerics,
                                squares);
      continue;
    }
    // The reference sums exact squares in f64; an engine (float_sums) squares and sums in float32.
    for (int64_t i = 0; i < n; ++i)
      squares[static_cast<size_t>(i)] = numerics.float_sums() ? numerics.f32(xr[i] * xr[i]) : xr[i] * xr[i];
    const double sum_sq = numerics.sum(squares.data(), n);
    const double mean_sq = numerics.f32(sum_sq / static_cast<double>(n));
    const double inv_rms = numerics.f32(1.0 / std::sqrt(numerics.f32(mean_sq + eps32)));
    for (int64_t i = 0; i < n; ++i) {
      const double normed = numerics.f32(xr[i] * inv_rms);
      switch (placement) {
        case NormWeight::kAfterCast: yr[i] = numerics.act(weight_at(i) * numerics.act_sum(normed, n)); break;
        case NormWeight::kInFloat32: yr[i] = numerics.act_sum(numerics.f32(normed * weight_at(i)), n); break;
        case NormWeight::kNone: yr[i] = numerics.act_sum(normed, n); break;
      }
    }
  }
  return y;
}

Array rms_norm_backward(const Array& x, const Weight* weight, double eps, NormWeight placement, const Array& dy,
                        Array* dweight, double weight_offset, std::string_view name) {
  const int64_t n = x.last_dim();
  PARITY_CHECK(n > 0 && dy.shape == x.shape, "[{} backward] output gradient {} does not match input {}", name,
               shape_str(dy.shape), shape_str(x.shape));
  const bool weighted = placement != NormWeight::kNone;
  PARITY_CHECK(!weighted || (weight != nullptr && weight->shape == Shape{n}), "[{} backward] weight {} does not match "
               "the last dim {}", name, weighted && weight ? shape_str(weight->shape) : "missing", n);
  PARITY_CHECK(!dweight || (weighted && dweight->shape == Shape{n}), "[{} backward] no weight gradient of shape [{}]",
               name, n);
  Array dx(x.shape);
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t r = 0; r < x.rows(); ++r) {
    const double* xr = x.row(r);
    const double* dyr = dy.row(r);
    double sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) sum_sq += xr[i] * xr[i];
    const double inv_rms = 1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps);
    double g_dot_x = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = weighted ? weight_offset + static_cast<double>(weight->data[i]) : 1.0;
      g[static_cast<size_t>(i)] = dyr[i] * v;
      g_dot_x += g[static_cast<size_t>(i)] * xr[i];
      if (dweight) dweight->data[i] += dyr[i] * xr[i] * inv_rms;
    }
    const double k = inv_rms * inv_rms * g_dot_x / static_cast<double>(n);
    double* d = dx.row(r);
    for (int64_t i = 0; i < n; ++i) d[i] = inv_rms * (g[static_cast<size_t>(i)] - xr[i] * k);
  }
  return dx;
}

}  // namespace parity::ops
