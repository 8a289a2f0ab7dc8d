// Rotary position embeddings in HF's "rotate_half" (NeoX, half-split) layout: dim j pairs with
// j + D/2, never interleaved pairs. cos/sin tables are [B, S, D] with cos[..., j] = cos[..., j + D/2]
// because HF builds them from concat(freqs, freqs).
#pragma once

#include <vector>

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// "default" rope: inv_freq[i] = 1 / theta^(2i / dim), i < dim/2, computed in float32 as HF does.
std::vector<double> default_inv_freq(int64_t dim, double theta, const Numerics& numerics);

struct RotaryTables {
  Array cos, sin;  // [B, S, D]
};

// freqs = position · inv_freq (float32), emb = concat(freqs, freqs),
// cos = cast_T(cos(emb) · attention_scaling), same for sin. position_ids is [B, S].
RotaryTables rotary_tables(const IndexArray& position_ids, const std::vector<double>& inv_freq,
                           double attention_scaling, const Numerics& numerics);

// x [B, S, N, D] rotated in place: y = x·cos + rotate_half(x)·sin, rotate_half([a | b]) = [-b | a].
// cos/sin are [B, S, D]; every head shares them.
void apply_rope(Array& x, const RotaryTables& tables, const Numerics& numerics);

}  // namespace parity::ops
