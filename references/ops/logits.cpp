#include "logits.h"

#include <algorithm>
#include <vector>
#include <cmath>

namespace parity::ops {

void softcap(Array& logits, double cap, const Numerics& numerics) {
  PARITY_CHECK(cap > 0, "[softcap] the cap must be positive, got {}", cap);
  const double c = numerics.f32(cap);  // a Python float against a float tensor
  for (double& x : logits.data) x = numerics.act(numerics.act(std::tanh(numerics.act(x / c))) * c);
}

Array next_token_logprobs(const Array& logits, const IndexArray& input_ids, const Numerics& numerics) {
  PARITY_CHECK(logits.shape.size() == 3 && input_ids.shape.size() == 2 && logits.shape[0] == input_ids.shape[0] &&
                   logits.shape[1] == input_ids.shape[1] && logits.shape[1] >= 2,
               "[logprobs] want logits [B, S, V] and input_ids [B, S] with S >= 2, got {} and {}",
               shape_str(logits.shape), shape_str(input_ids.shape));
  const int64_t batch = logits.shape[0], seq = logits.shape[1], vocab = logits.shape[2];
  Array out({batch, seq - 1});
  std::vector<double> terms(static_cast<size_t>(vocab));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s + 1 < seq; ++s) {
      const double* row = logits.row(b * seq + s);
      const int64_t next = input_ids.data[static_cast<size_t>(b * seq + s + 1)];
      PARITY_CHECK(next >= 0 && next < vocab, "[logprobs] token id {} at [{}, {}] outside 0..{}", next, b, s + 1,
                   vocab - 1);
      // log_softmax as torch computes it: x - max - log(sum(exp(x - max))), each step in float32.
      const double max = *std::max_element(row, row + vocab);
      for (int64_t v = 0; v < vocab; ++v) terms[static_cast<size_t>(v)] = numerics.f32(std::exp(numerics.f32(row[v] - max)));
      const double sum = numerics.sum(terms.data(), vocab);
      const double log_sum = numerics.f32(std::log(numerics.f32(sum)));
      out.data[static_cast<size_t>(b * (seq - 1) + s)] = numerics.f32(numerics.f32(row[next] - max) - log_sum);
    }
  return out;
}

void softcap_backward(const Array& logits_before, double cap, Array& dy) {
  PARITY_CHECK(cap > 0 && dy.shape == logits_before.shape, "[softcap backward] cap {} and gradient {} vs logits {}", cap,
               shape_str(dy.shape), shape_str(logits_before.shape));
  for (int64_t i = 0; i < dy.numel(); ++i) {
    const double t = std::tanh(logits_before.data[i] / cap);
    dy.data[i] *= 1.0 - t * t;
  }
}

Array next_token_logprobs_backward(const Array& logits, const IndexArray& input_ids, const Array& dlogprobs) {
  PARITY_CHECK(logits.shape.size() == 3 && input_ids.shape.size() == 2 && logits.shape[0] == input_ids.shape[0] &&
                   logits.shape[1] == input_ids.shape[1] && logits.shape[1] >= 2 &&
                   dlogprobs.shape == (Shape{logits.shape[0], logits.shape[1] - 1}),
               "[logprobs backward] want logits [B, S, V], input_ids [B, S] and a gradient [B, S - 1], got {}, {}, {}",
               shape_str(logits.shape), shape_str(input_ids.shape), shape_str(dlogprobs.shape));
  const int64_t batch = logits.shape[0], seq = logits.shape[1], vocab = logits.shape[2];
  Array dlogits(logits.shape);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s + 1 < seq; ++s) {
      const double g = dlogprobs.data[static_cast<size_t>(b * (seq - 1) + s)];
      const double* row = logits.row(b * seq + s);
      const int64_t next = input_ids.data[static_cast<size_t>(b * seq + s + 1)];
      PARITY_CHECK(next >= 0 && next < vocab, "[logprobs backward] token id {} at [{}, {}] outside 0..{}", next, b,
                   s + 1, vocab - 1);
      const double max = *std::max_element(row, row + vocab);
      double sum = 0;
      for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
      double* d = dlogits.row(b * seq + s);
      for (int64_t v = 0; v < vocab; ++v) d[v] = -g * std::exp(row[v] - max) / sum;
      d[next] += g;
    }
  return dlogits;
}

}  // namespace parity::ops
