// Eager attention as HF's eager_attention_forward computes it (both families):
//   scores = cast_T(Q·Kᵀ) · scaling, scores += mask (additive), P = softmax_fp32(scores) cast to T,
//   O = P·V, heads flattened. GQA: query head h reads KV head h / (Nh / Nkv) (repeat_kv).
#pragma once

#include <optional>

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// The additive mask HF's eager path adds: 0 where key j is visible to query i, finfo(T).min
// elsewhere. Visible iff j <= i, padding[b, j] != 0 and, with a sliding window W, i - j < W.
// padding is the 2-D attention_mask [B, S]; the result is [B, 1, S, S] like HF's 4-D mask.
Array causal_mask(const IndexArray& padding, std::optional<int64_t> sliding_window, const Numerics& numerics);

struct AttentionResult {
  Array context;  // [B, S, Nh·D]: O with heads flattened (the o_proj input)
  Array probs;    // [B, Nh, S, S]: P (HF's attn_weights)
};

// q [B, S, Nh, D], k and v [B, S, Nkv, D], mask [B, 1, S, S] (additive).
// How the attention softmax computes: kFloat32 as HF (softmax(dtype=float32).to(dtype)); kActivation
// in the activation dtype, every step rounded (the gemma4_attention_softmax_bf16 bug).
enum class SoftmaxArithmetic { kFloat32, kActivation };

AttentionResult attention(const Array& q, const Array& k, const Array& v, const Array& mask, double scaling,
                          const Numerics& numerics, SoftmaxArithmetic softmax = SoftmaxArithmetic::kFloat32);

// Softmax over the last dim computed in float32 (torch softmax(dtype=float32)); no cast back.
void softmax_rows_f32(double* row, int64_t n, const Numerics& numerics);

struct AttentionGradients {
  Array q, k, v;  // shaped as the forward's q, k, v; a KV head sums the gradients of every query head it serves
};

// The backward of attention at the exact math, from dcontext [B, S, Nh·D] and the forward's probs
// P [B, Nh, S, S]: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)) (the softmax's), dQ =
// scaling·dS·K, dK = scaling·dSᵀ·Q. Masked keys have P = 0 and so no gradient; the additive mask
// and `scaling` are constants. A query row with every key masked (left padding) has HF's uniform
// probabilities and, as under autograd, a gradient through them.
AttentionGradients attention_backward(const Array& q, const Array& k, const Array& v, const Array& probs, double scaling,
                                      const Array& dcontext);

}  // namespace parity::ops
