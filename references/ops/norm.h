// RMSNorm over the last dim, in the two ways the families place the weight:
//   kAfterCast (OLMoE, Llama):  y = w ⊙ cast_T( x · rsqrt(mean(x²) + eps) )   (OlmoeRMSNorm)
//   kInFloat32 (Gemma-4):       y = cast_T( x · (mean(x²) + eps)^-½ · w )      (Gemma4RMSNorm)
//   kNone      (Gemma-4 v_norm, router.norm): y = cast_T( x · (mean(x²) + eps)^-½ )
// The weight is applied as w, never 1 + w (Gemma 1-3 did that; Gemma-4 and OLMoE do not), unless
// weight_offset asks for it (the rmsnorm_one_plus_weight variant: weight_offset 1): offset + w is
// then rounded where the weight enters, act for kAfterCast ((1 + w) in T), f32 for kInFloat32
// ((1 + w.float())).
#pragma once

#include <string_view>

#include "array.h"
#include "numerics.h"

namespace parity::ops {

enum class NormWeight { kAfterCast, kInFloat32, kNone };

// Normalises every row of x (its last dim); weight is [last dim] (ignored for kNone).
// How the norm computes: kFloat32 as HF (x.float(), cast back at the end); kActivation in the
// activation dtype, every step rounded (the gemma4_rmsnorm_bf16 bug): x^2, the mean (accumulated in
// float, rounded once), + eps, its square root, the reciprocal, x times it, times the weight.
enum class NormArithmetic { kFloat32, kActivation };

Array rms_norm(const Array& x, const Weight* weight, double eps, NormWeight placement, const Numerics& numerics,
               std::string_view name = "rms_norm", double weight_offset = 0.0,
               NormArithmetic arithmetic = NormArithmetic::kFloat32);

// The backward of rms_norm at the exact math: every placement computes y = v ⊙ x · r per row, with
// r = (mean(x²) + eps)^-½ and v = offset + w (1 for kNone); they differ only in where they round.
// Returns dx = r·(g − x·r²·mean(g ⊙ x)), g = dy ⊙ v, and adds Σ_rows dy ⊙ x·r to `dweight` ([n],
// when given and the norm has a weight).
Array rms_norm_backward(const Array& x, const Weight* weight, double eps, NormWeight placement, const Array& dy,
                        Array* dweight, double weight_offset = 0.0, std::string_view name = "rms_norm");

}  // namespace parity::ops
