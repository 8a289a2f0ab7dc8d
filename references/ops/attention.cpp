#include "attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "linear.h"

namespace parity::ops {

namespace {

// finfo(T).min for the activation dtype: HF's masked score.
double masked_value(const Numerics& numerics) {
  if (numerics.precision() == Precision::BF16) return -3.3895313892515355e38;
  return std::numeric_limits<float>::lowest();
}

}  // namespace

Array causal_mask(const IndexArray& padding, std::optional<int64_t> sliding_window, const Numerics& numerics) {
  PARITY_CHECK(padding.shape.size() == 2, "[attention] attention_mask must be [B, S], got {}",
               shape_str(padding.shape));
  const int64_t batch = padding.shape[0], seq = padding.shape[1];
  Array mask({batch, 1, seq, seq});
  const double hidden = masked_value(numerics);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < seq; ++i)
      for (int64_t j = 0; j < seq; ++j) {
        const bool visible = j <= i && padding.data[static_cast<size_t>(b * seq + j)] != 0 &&
                             (!sliding_window || i - j < *sliding_window);
        mask.data[static_cast<size_t>((b * seq + i) * seq + j)] = visible ? 0.0 : hidden;
      }
  return mask;
}

void softmax_rows_f32(double* row, int64_t n, const Numerics& numerics) {
  const double max = *std::max_element(row, row + n);
  for (int64_t j = 0; j < n; ++j) row[j] = numerics.f32(std::exp(row[j] - max));
  const double sum = numerics.f32(numerics.sum(row, n));
  for (int64_t j = 0; j < n; ++j) row[j] = numerics.f32(row[j] / sum);
}

// softmax computed in the activation dtype, as `w - w.amax(-1)`, `.exp()`, `/ .sum(-1)` on a bf16
// tensor: each elementwise result rounded, the sum accumulated in float and rounded once.
void softmax_row_in_act_dtype(double* row, int64_t n, const Numerics& numerics) {
  const double max = *std::max_element(row, row + n);
  for (int64_t j = 0; j < n; ++j) row[j] = numerics.act(numerics.f32(std::exp(numerics.act(row[j] - max))));
  const double sum = numerics.act_sum(numerics.sum(row, n), n);
  for (int64_t j = 0; j < n; ++j) row[j] = numerics.act(row[j] / sum);
}

AttentionResult attention(const Array& q, const Array& k, const Array& v, const Array& mask, double scaling,
                          const Numerics& numerics, SoftmaxArithmetic softmax) {
  PARITY_CHECK(q.shape.size() == 4 && k.shape.size() == 4 && v.shape == k.shape,
               "[attention] want q [B, S, Nh, D] and k, v [B, S, Nkv, D], got {}, {}, {}", shape_str(q.shape),
               shape_str(k.shape), shape_str(v.shape));
  const int64_t batch = q.shape[0], seq = q.shape[1], heads = q.shape[2], dim = q.shape[3], kv_heads = k.shape[2];
  PARITY_CHECK(k.shape[0] == batch && k.shape[1] == seq && k.shape[3] == dim && kv_heads > 0 && heads % kv_heads == 0,
               "[attention] k {} does not fit q {} (GQA needs Nh % Nkv == 0)", shape_str(k.shape), shape_str(q.shape));
  PARITY_CHECK(mask.shape == (Shape{batch, 1, seq, seq}), "[attention] mask {} is not [B, 1, S, S] = [{}, 1, {}, {}]",
               shape_str(mask.shape), batch, seq, seq);
  const int64_t group = heads / kv_heads;
  AttentionResult r{Array({batch, seq, heads * dim}), Array({batch, heads, seq, seq})};
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / group;  // repeat_kv: KV head g serves query heads g·group .. g·group + group - 1
      const double* qh = q.data.data() + (b * seq * heads + h) * dim;
      const double* kh = k.data.data() + (b * seq * kv_heads + g) * dim;
      const double* vh = v.data.data() + (b * seq * kv_heads + g) * dim;
      double* p = r.probs.data.data() + (b * heads + h) * seq * seq;
      matmul_abt(qh, heads * dim, kh, kv_heads * dim, p, seq, seq, seq, dim, numerics);
      const double* m = mask.data.data() + b * seq * seq;
      for (int64_t ij = 0; ij < seq * seq; ++ij) p[ij] = numerics.act(numerics.act(numerics.act_sum(p[ij], dim) * scaling) + m[ij]);
      for (int64_t i = 0; i < seq; ++i) {
        if (softmax == SoftmaxArithmetic::kActivation) {
          softmax_row_in_act_dtype(p + i * seq, seq, numerics);
          continue;
        }
        softmax_rows_f32(p + i * seq, seq, numerics);
        for (int64_t j = 0; j < seq; ++j) p[i * seq + j] = numerics.act_sum(p[i * seq + j], seq);
      }
      double* out = r.context.data.data() + b * seq * heads * dim + h * dim;
      matmul_ab(p, seq, vh, kv_heads * dim, out, heads * dim, seq, dim, seq, numerics);
    }
  }
  numerics.act_sum(r.context, seq);
  return r;
}

AttentionGradients attention_backward(const Array& q, const Array& k, const Array& v, const Array& probs, double scaling,
                                      const Array& dcontext) {
  PARITY_CHECK(q.shape.size() == 4 && k.shape.size() == 4 && v.shape == k.shape && k.shape[2] > 0 &&
                   q.shape[2] % k.shape[2] == 0,
               "[attention backward] want q [B, S, Nh, D] and k, v [B, S, Nkv, D], got {}, {}, {}", shape_str(q.shape),
               shape_str(k.shape), shape_str(v.shape));
  const int64_t batch = q.shape[0], seq = q.shape[1], heads = q.shape[2], dim = q.shape[3], kv_heads = k.shape[2];
  PARITY_CHECK(probs.shape == (Shape{batch, heads, seq, seq}) && dcontext.shape == (Shape{batch, seq, heads * dim}),
               "[attention backward] probs {} and context gradient {} do not fit q {}", shape_str(probs.shape),
               shape_str(dcontext.shape), shape_str(q.shape));
  const int64_t group = heads / kv_heads;
  AttentionGradients g{Array(q.shape), Array(k.shape), Array(v.shape)};
  std::vector<double> dp(static_cast<size_t>(seq));
  // Element (b, s, head, d) of a [B, S, N, D] tensor.
  auto at = [seq, dim](int64_t b, int64_t s, int64_t n_heads, int64_t head) {
    return ((b * seq + s) * n_heads + head) * dim;
  };
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h / group;
      const double* p = probs.data.data() + (b * heads + h) * seq * seq;
      for (int64_t i = 0; i < seq; ++i) {
        const double* dout = dcontext.data.data() + at(b, i, heads, h);
        double dot = 0;
        for (int64_t j = 0; j < seq; ++j) {
          const double* vj = v.data.data() + at(b, j, kv_heads, kvh);
          double* dvj = g.v.data.data() + at(b, j, kv_heads, kvh);
          double s = 0;
          for (int64_t d = 0; d < dim; ++d) {
            s += dout[d] * vj[d];
            dvj[d] += p[i * seq + j] * dout[d];
          }
          dp[static_cast<size_t>(j)] = s;
          dot += s * p[i * seq + j];
        }
        const double* qi = q.data.data() + at(b, i, heads, h);
        double* dqi = g.q.data.data() + at(b, i, heads, h);
        for (int64_t j = 0; j < seq; ++j) {
          const double ds = p[i * seq + j] * (dp[static_cast<size_t>(j)] - dot) * scaling;
          if (ds == 0) continue;
          const double* kj = k.data.data() + at(b, j, kv_heads, kvh);
          double* dkj = g.k.data.data() + at(b, j, kv_heads, kvh);
          for (int64_t d = 0; d < dim; ++d) {
            dqi[d] += ds * kj[d];
            dkj[d] += ds * qi[d];
          }
        }
      }
    }
  return g;
}

}  // namespace parity::ops
