#include "rope.h"

#include <cmath>

namespace parity::ops {

namespace {

// 1 / theta^(2i / dim) in float32: arange(0, dim, 2).float() / dim, then base ** that, then 1.0 / it.
double inv_freq_at(int64_t i, int64_t dim, double theta, const Numerics& numerics) {
  const double exponent = numerics.f32(static_cast<double>(2 * i) / static_cast<double>(dim));
  return numerics.f32(1.0 / numerics.f32(std::pow(theta, exponent)));
}

}  // namespace

std::vector<double> default_inv_freq(int64_t dim, double theta, const Numerics& numerics) {
  PARITY_CHECK(dim > 0 && dim % 2 == 0, "[rope] head dim {} must be even and positive", dim);
  std::vector<double> inv_freq(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) inv_freq[static_cast<size_t>(i)] = inv_freq_at(i, dim, theta, numerics);
  return inv_freq;
}

int64_t proportional_rotated_angles(int64_t head_dim, double partial_rotary_factor) {
  // Python: int(rope_proportion * head_dim // 2), a float floor division.
  return static_cast<int64_t>(std::floor(partial_rotary_factor * static_cast<double>(head_dim) / 2.0));
}

std::vector<double> proportional_inv_freq(int64_t head_dim, double theta, double partial_rotary_factor, double factor,
                                          const Numerics& numerics) {
  PARITY_CHECK(head_dim > 0 && head_dim % 2 == 0, "[rope] head dim {} must be even and positive", head_dim);
  PARITY_CHECK(partial_rotary_factor >= 0 && partial_rotary_factor <= 1 && factor > 0,
               "[rope] partial_rotary_factor {} must be in [0, 1] and factor {} positive", partial_rotary_factor,
               factor);
  const int64_t rotated = proportional_rotated_angles(head_dim, partial_rotary_factor);
  std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2), 0.0);  // the nope angles stay exactly 0
  for (int64_t i = 0; i < rotated; ++i)
    inv_freq[static_cast<size_t>(i)] = numerics.f32(inv_freq_at(i, head_dim, theta, numerics) / numerics.f32(factor));
  return inv_freq;
}

RotaryTables rotary_tables(const IndexArray& position_ids, const std::vector<double>& inv_freq,
                           double attention_scaling, const Numerics& numerics) {
  PARITY_CHECK(position_ids.shape.size() == 2, "[rope] position_ids must be [B, S], got {}",
               shape_str(position_ids.shape));
  const int64_t half = static_cast<int64_t>(inv_freq.size()), dim = 2 * half;
  const int64_t tokens = position_ids.numel();
  RotaryTables t{Array({position_ids.shape[0], position_ids.shape[1], dim}),
                 Array({position_ids.shape[0], position_ids.shape[1], dim})};
  for (int64_t tok = 0; tok < tokens; ++tok) {
    const double position = static_cast<double>(position_ids.data[static_cast<size_t>(tok)]);
    for (int64_t i = 0; i < half; ++i) {
      const double freq = numerics.f32(inv_freq[static_cast<size_t>(i)] * numerics.f32(position));
      const double c = numerics.act(numerics.f32(numerics.f32(std::cos(freq)) * attention_scaling));
      const double s = numerics.act(numerics.f32(numerics.f32(std::sin(freq)) * attention_scaling));
      t.cos.row(tok)[i] = t.cos.row(tok)[i + half] = c;
      t.sin.row(tok)[i] = t.sin.row(tok)[i + half] = s;
    }
  }
  return t;
}

void apply_rope(Array& x, const RotaryTables& tables, const Numerics& numerics) {
  PARITY_CHECK(x.shape.size() == 4, "[rope] input must be [B, S, N, D], got {}", shape_str(x.shape));
  const int64_t tokens = x.shape[0] * x.shape[1], heads = x.shape[2], dim = x.shape[3], half = dim / 2;
  PARITY_CHECK(tables.cos.shape == (Shape{x.shape[0], x.shape[1], dim}) && tables.sin.shape == tables.cos.shape,
               "[rope] cos/sin {} do not match input {} (want [B, S, D])", shape_str(tables.cos.shape),
               shape_str(x.shape));
  for (int64_t tok = 0; tok < tokens; ++tok) {
    const double* c = tables.cos.row(tok);
    const double* s = tables.sin.row(tok);
    for (int64_t h = 0; h < heads; ++h) {
      double* v = x.data.data() + (tok * heads + h) * dim;
      for (int64_t j = 0; j < half; ++j) {
        const double a = v[j], b = v[j + half];  // rotate_half(x)[j] = -b, rotate_half(x)[j + half] = a
        v[j] = numerics.act(numerics.act(a * c[j]) + numerics.act(-b * s[j]));
        v[j + half] = numerics.act(numerics.act(b * c[j + half]) + numerics.act(a * s[j + half]));
      }
    }
  }
}

void apply_rope_contiguous_partial(Array& x, const RotaryTables& tables, int64_t angles, const Numerics& numerics) {
  PARITY_CHECK(x.shape.size() == 4, "[rope] input must be [B, S, N, D], got {}", shape_str(x.shape));
  const int64_t tokens = x.shape[0] * x.shape[1], heads = x.shape[2], dim = x.shape[3];
  PARITY_CHECK(tables.cos.shape == (Shape{x.shape[0], x.shape[1], dim}) && tables.sin.shape == tables.cos.shape,
               "[rope] cos/sin {} do not match input {} (want [B, S, D])", shape_str(tables.cos.shape),
               shape_str(x.shape));
  PARITY_CHECK(angles >= 0 && 2 * angles <= dim, "[rope] {} rotated angles do not fit head dim {}", angles, dim);
  for (int64_t tok = 0; tok < tokens; ++tok) {
    const double* c = tables.cos.row(tok);
    const double* s = tables.sin.row(tok);
    for (int64_t h = 0; h < heads; ++h) {
      double* v = x.data.data() + (tok * heads + h) * dim;
      for (int64_t j = 0; j < angles; ++j) {
        const double a = v[j], b = v[j + angles];  // rotate_half over 2A dims: [-b | a]
        v[j] = numerics.act(numerics.act(a * c[j]) + numerics.act(-b * s[j]));
        v[j + angles] = numerics.act(numerics.act(b * c[j]) + numerics.act(a * s[j]));
      }
    }
  }
}

void apply_rope_backward(Array& dy, const RotaryTables& tables) {
  PARITY_CHECK(dy.shape.size() == 4 && tables.cos.shape == (Shape{dy.shape[0], dy.shape[1], dy.shape[3]}) &&
                   tables.sin.shape == tables.cos.shape,
               "[rope backward] cos/sin {} do not match gradient {} (want [B, S, D])", shape_str(tables.cos.shape),
               shape_str(dy.shape));
  const int64_t tokens = dy.shape[0] * dy.shape[1], heads = dy.shape[2], dim = dy.shape[3], half = dim / 2;
  for (int64_t tok = 0; tok < tokens; ++tok) {
    const double* c = tables.cos.row(tok);
    const double* s = tables.sin.row(tok);
    for (int64_t h = 0; h < heads; ++h) {
      double* v = dy.data.data() + (tok * heads + h) * dim;
      for (int64_t j = 0; j < half; ++j) {
        const double a = v[j], b = v[j + half];
        v[j] = a * c[j] + b * s[j + half];
        v[j + half] = b * c[j + half] - a * s[j];
      }
    }
  }
}

}  // namespace parity::ops
