// Mixture-of-experts FFN in transformers' fused layout (@use_experts_implementation):
//   gate_up_proj [E, 2I, H]: rows 0..I-1 are the gate projection, rows I..2I-1 the up projection
//   down_proj    [E, H, I]
//   expert e on x:  down_e · ( act(G_e x) ⊙ (U_e x) )
//   out[t] = Σ_j w[t, j] · expert_{index[t, j]}(x[t])
// Rounding follows the "eager" implementation the dumper requests: each expert's weighted output
// is cast to T and index_add_-ed in ascending expert order.
#pragma once

#include "activation.h"
#include "array.h"
#include "numerics.h"

namespace parity::ops {

struct ExpertWeights {
  const Weight& gate_up_proj;  // [E, 2I, H]
  const Weight& down_proj;     // [E, H, I]
};

// x [T, H], index [T, K] (expert ids), weights [T, K] (HF's routing weights: cast to T by OLMoE,
// float32 for Gemma-4) -> [T, H].
Array experts(const Array& x, const IndexArray& index, const Array& weights, const ExpertWeights& w,
              Activation activation, const Numerics& numerics);

struct ExpertGradients {
  Array x;        // [T, H]
  Array weights;  // [T, K]: d loss / d each routing weight = <dout[t], expert_e(x[t])>, exactly
  Array gate_up_proj, down_proj;  // shaped as the fused weights; experts no token chose get zeros
};

// The backward of experts at the exact math, from dout [T, H]. For slot (t, j) on expert e with
// gate g = G_e x, up u = U_e x, h = act(g) ⊙ u, y = D_e h: dweights[t, j] = <dout[t], y>, and with
// dy = w·dout[t]: dD_e += dy ⊗ h, dh = D_eᵀ dy, dg = dh ⊙ u ⊙ act'(g), du = dh ⊙ act(g),
// dG_e += dg ⊗ x, dU_e += du ⊗ x, dx += G_eᵀ dg + U_eᵀ du. The index carries no gradient.
ExpertGradients experts_backward(const Array& x, const IndexArray& index, const Array& weights, const ExpertWeights& w,
                                 Activation activation, const Array& dout);

}  // namespace parity::ops
