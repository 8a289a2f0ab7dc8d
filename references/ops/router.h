// Top-k routing: probabilities over ALL experts, the k largest, optional renormalisation.
// Softmaxing only the k selected logits is the classic bug (it silently renormalises); this file
// softmaxes the full row first, as OlmoeTopKRouter and Gemma4TextRouter do.
#pragma once

#include <vector>

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// Softmax over every expert, in float32 like torch softmax(dtype=float32): logits [T, E] -> [T, E].
Array router_probs(const Array& logits, const Numerics& numerics);

// Indices of the k largest values of row, descending; equal values keep the lower index first.
std::vector<int64_t> top_k(const double* row, int64_t n, int64_t k);
IndexArray top_k_rows(const Array& scores, int64_t k);  // [T, E] -> [T, k]

// Routing weights of the selected experts: probs[t, index[t, j]], divided by their sum when
// renormalise (norm_topk_prob; always for Gemma-4), all in float32. No cast to T: callers do that,
// since Gemma-4 multiplies by per_expert_scale first. `index` may be HF's own (routing replay).
Array gather_top_k(const Array& probs, const IndexArray& index, bool renormalise, const Numerics& numerics);

// The classic bug (variant olmoe_router_topk_softmax): the weights of the selected experts as a
// float32 softmax over the k selected LOGITS only, divided by their float32 sum when renormalise.
// logits [T, E], index [T, k] -> [T, k]; always sums to ~1. No cast to T.
Array softmax_top_k_logits(const Array& logits, const IndexArray& index, bool renormalise, const Numerics& numerics);

// A per-input-channel scale folded into a projection weight and stored in bfloat16 (variant
// gemma4_router_folded_bf16), as torch computes (W.float() * (scale.float() * root)).to(bfloat16):
//   folded[o, i] = bf16_rne( f32( W[o, i] · f32( scale[i] · f32(root) ) ) ), widened back to float
// (exact in either run dtype). weight [out, in], scale [in].
Weight fold_scale_bf16(const Weight& weight, const Weight& scale, double root);

// Backwards at the exact math. The top-k index is an integer choice: no gradient flows through it,
// only through the probabilities it selects.
// router_probs: d loss / d logits = P ⊙ (dP − rowsum(dP ⊙ P)), per token.
Array router_probs_backward(const Array& probs, const Array& dprobs);
// gather_top_k: d loss / d probs [T, E], nonzero only at the selected experts. Without renormalise
// dprobs[t, e_j] = dw[t, j]; with it (w_j = p_j / Σ p), dprobs[t, e_j] = (dw_j − Σ_i dw_i·w_i) / Σ p:
// the denominator's share, the path a detached renormalisation drops.
Array gather_top_k_backward(const Array& probs, const IndexArray& index, bool renormalise, const Array& dweights);
// Gemma-4's per_expert_scale: scaled[t, j] = weights[t, j] · scale[index[t, j]]. Returns d loss /
// d weights and adds Σ dscaled·weights over the slots that chose expert e to `dscale`[e] (when given).
Array per_expert_scale_backward(const Array& weights, const IndexArray& index, const Weight& scale,
                                const Array& dscaled, Array* dscale);

}  // namespace parity::ops
