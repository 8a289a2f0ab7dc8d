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

// "proportional" rope (Gemma-4 full attention; modeling_rope_utils.py _compute_proportional_rope_parameters):
// A = int(partial_rotary_factor · head_dim // 2) rotated frequencies inv_freq[i] = theta^(-2i / head_dim) / factor
// (the exponent's denominator is the FULL head dim, not the rotary width 2A), then head_dim/2 - A zeros.
// Through concat(freqs, freqs) and rotate_half the table still spans the whole head: dims 0..A-1 rotate
// with head_dim/2 .. head_dim/2 + A - 1 and every other dim passes through (cos 1, sin 0). A 64-entry
// table with "rotary_percent 0.25" instead pairs dims within the first 128: the Megatron bridge bug.
// A = int(partial_rotary_factor · head_dim // 2): how many angles a proportional table rotates.
int64_t proportional_rotated_angles(int64_t head_dim, double partial_rotary_factor);
std::vector<double> proportional_inv_freq(int64_t head_dim, double theta, double partial_rotary_factor, double factor,
                                          const Numerics& numerics);

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

// The Megatron layout of partial RoPE (variant gemma4_rope_contiguous_partial): only the first 2·angles
// dims rotate, dim j with j + angles (j < angles) by the angle of table column j:
//   y[..., :2A] = x[..., :2A]·c + rotate_half(x[..., :2A])·s,  c = [cos[:A] | cos[:A]], s likewise;
//   y[..., 2A:] = x[..., 2A:].
// HF's apply_rope pairs j with j + D/2 over the whole head instead. Same tables and rounding as apply_rope.
void apply_rope_contiguous_partial(Array& x, const RotaryTables& tables, int64_t angles, const Numerics& numerics);

// The backward of apply_rope (in place on dy [B, S, N, D]): the rotation's transpose,
// dx[j] = dy[j]·cos[j] + dy[j + D/2]·sin[j + D/2], dx[j + D/2] = dy[j + D/2]·cos[j + D/2] − dy[j]·sin[j].
// cos/sin are inputs computed from integer positions: they receive no gradient.
void apply_rope_backward(Array& dy, const RotaryTables& tables);

}  // namespace parity::ops
