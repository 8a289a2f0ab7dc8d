#include "router.h"

#include <algorithm>
#include <numeric>

#include "attention.h"
#include "dtype.h"

namespace parity::ops {

Array router_probs(const Array& logits, const Numerics& numerics) {
  Array probs = logits;
  for (int64_t t = 0; t < probs.rows(); ++t) softmax_rows_f32(probs.row(t), probs.last_dim(), numerics);
  return probs;
}

std::vector<int64_t> top_k(const double* row, int64_t n, int64_t k) {
  PARITY_CHECK(k > 0 && k <= n, "[router] top-k {} out of range for {} experts", k, n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [row](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  order.resize(static_cast<size_t>(k));
  return order;
}

IndexArray top_k_rows(const Array& scores, int64_t k) {
  IndexArray index{{scores.rows(), k}, {}};
  index.data.reserve(static_cast<size_t>(scores.rows() * k));
  for (int64_t t = 0; t < scores.rows(); ++t) {
    std::vector<int64_t> row = top_k(scores.row(t), scores.last_dim(), k);
    index.data.insert(index.data.end(), row.begin(), row.end());
  }
  return index;
}

Array gather_top_k(const Array& probs, const IndexArray& index, bool renormalise, const Numerics& numerics) {
  const int64_t tokens = probs.rows(), experts = probs.last_dim();
  PARITY_CHECK(index.shape.size() == 2 && index.shape[0] == tokens, "[router] top-k index {} does not fit probs {}",
               shape_str(index.shape), shape_str(probs.shape));
  const int64_t k = index.shape[1];
  Array weights({tokens, k});
  for (int64_t t = 0; t < tokens; ++t) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = index.data[static_cast<size_t>(t * k + j)];
      PARITY_CHECK(e >= 0 && e < experts, "[router] expert index {} at token {} outside 0..{}", e, t, experts - 1);
      sum += (weights.row(t)[j] = probs.row(t)[e]);
    }
    if (!renormalise) continue;
    sum = numerics.f32(sum);
    for (int64_t j = 0; j < k; ++j) weights.row(t)[j] = numerics.f32(weights.row(t)[j] / sum);
  }
  return weights;
}

Array softmax_top_k_logits(const Array& logits, const IndexArray& index, bool renormalise,
                           const Numerics& numerics) {
  Array weights = gather_top_k(logits, index, /*renormalise=*/false, numerics);  // the selected logits
  for (int64_t t = 0; t < weights.rows(); ++t) {
    double* row = weights.row(t);
    const int64_t k = weights.last_dim();
    softmax_rows_f32(row, k, numerics);
    if (!renormalise) continue;
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += row[j];
    sum = numerics.f32(sum);
    for (int64_t j = 0; j < k; ++j) row[j] = numerics.f32(row[j] / sum);
  }
  return weights;
}

Weight fold_scale_bf16(const Weight& weight, const Weight& scale, double root) {
  PARITY_CHECK(weight.shape.size() == 2 && scale.shape == Shape{weight.shape[1]},
               "[router] scale {} does not fit the weight {} (want [in] for [out, in])", shape_str(scale.shape),
               shape_str(weight.shape));
  const int64_t out = weight.shape[0], in = weight.shape[1];
  // float * float is exact in double, so one static_cast<float> is torch's rounded float32 product.
  const float root32 = static_cast<float>(root);
  std::vector<float> factor(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i)
    factor[static_cast<size_t>(i)] = static_cast<float>(static_cast<double>(scale.data[static_cast<size_t>(i)]) * root32);
  Weight folded{weight.shape, std::vector<float>(weight.data.size())};
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const size_t at = static_cast<size_t>(o * in + i);
      const auto product = static_cast<float>(static_cast<double>(weight.data[at]) * factor[static_cast<size_t>(i)]);
      folded.data[at] = bf16_to_f32(f32_to_bf16(product));
    }
  return folded;
}

Array router_probs_backward(const Array& probs, const Array& dprobs) {
  PARITY_CHECK(dprobs.shape == probs.shape, "[router backward] gradient {} does not match probs {}",
               shape_str(dprobs.shape), shape_str(probs.shape));
  Array dlogits(probs.shape);
  for (int64_t t = 0; t < probs.rows(); ++t) {
    double dot = 0;
    for (int64_t e = 0; e < probs.last_dim(); ++e) dot += dprobs.row(t)[e] * probs.row(t)[e];
    for (int64_t e = 0; e < probs.last_dim(); ++e) dlogits.row(t)[e] = probs.row(t)[e] * (dprobs.row(t)[e] - dot);
  }
  return dlogits;
}

Array gather_top_k_backward(const Array& probs, const IndexArray& index, bool renormalise, const Array& dweights) {
  const int64_t tokens = probs.rows(), experts = probs.last_dim();
  PARITY_CHECK(index.shape.size() == 2 && index.shape[0] == tokens && dweights.shape == index.shape,
               "[router backward] top-k index {} and gradient {} do not fit probs {}", shape_str(index.shape),
               shape_str(dweights.shape), shape_str(probs.shape));
  const int64_t k = index.shape[1];
  Array dprobs(probs.shape);
  for (int64_t t = 0; t < tokens; ++t) {
    auto expert = [&](int64_t j) {
      const int64_t e = index.data[static_cast<size_t>(t * k + j)];
      PARITY_CHECK(e >= 0 && e < experts, "[router backward] expert index {} at token {} outside 0..{}", e, t,
                   experts - 1);
      return e;
    };
    double sum = 0, dot = 0;
    for (int64_t j = 0; j < k; ++j) sum += probs.row(t)[expert(j)];
    for (int64_t j = 0; j < k; ++j) dot += dweights.row(t)[j] * probs.row(t)[expert(j)] / sum;
    for (int64_t j = 0; j < k; ++j)
      dprobs.row(t)[expert(j)] += renormalise ? (dweights.row(t)[j] - dot) / sum : dweights.row(t)[j];
  }
  return dprobs;
}

Array per_expert_scale_backward(const Array& weights, const IndexArray& index, const Weight& scale,
                                const Array& dscaled, Array* dscale) {
  PARITY_CHECK(index.shape == weights.shape && dscaled.shape == weights.shape && scale.shape.size() == 1 &&
                   (!dscale || dscale->shape == scale.shape),
               "[router backward] per_expert_scale {}, weights {}, index {} and gradient {} do not fit",
               shape_str(scale.shape), shape_str(weights.shape), shape_str(index.shape), shape_str(dscaled.shape));
  Array dweights(weights.shape);
  for (int64_t i = 0; i < weights.numel(); ++i) {
    const int64_t e = index.data[static_cast<size_t>(i)];
    PARITY_CHECK(e >= 0 && e < scale.shape[0], "[router backward] expert index {} outside 0..{}", e, scale.shape[0] - 1);
    dweights.data[i] = dscaled.data[i] * static_cast<double>(scale.data[e]);
    if (dscale) dscale->data[e] += dscaled.data[i] * weights.data[i];
  }
  return dweights;
}

}  // namespace parity::ops
