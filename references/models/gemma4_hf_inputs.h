// HF's tensors a Gemma-4 module reads, as the fixture holds them (golden/README.md "Hook keys"): the
// rotary tables a layer or attention block receives, and the shared K/V: a source layer's K and V
// appear as the next layer's input "<layer>@in.shared_kv_states.<type>.0 / .1", [B, Nkv, S, d],
// and as each reading self_attn's input of the same name. Shared by the forward replay
// (gemma4_hooks.cpp) and the backward (gemma4_backward.cpp).
#pragma once

#include <string>

#include <fmt/format.h>

#include "gemma4.h"
#include "ops/rope.h"

namespace parity::gemma4_kv {

using KeyValue = Gemma4::KeyValue;

// [B, X, Y, d] -> [B, Y, X, d]: HF stores shared K/V as [B, Nkv, S, d]; attention reads [B, S, Nkv, d].
inline Array swap_axes_1_2(const Array& a) {
  PARITY_CHECK(a.shape.size() == 4, "[gemma4] shared K/V must be 4-D, got {}", shape_str(a.shape));
  const int64_t batch = a.shape[0], x = a.shape[1], y = a.shape[2], dim = a.shape[3];
  Array out({batch, y, x, dim});
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < x; ++i)
      for (int64_t j = 0; j < y; ++j)
        std::copy_n(a.data.data() + ((b * x + i) * y + j) * dim, dim, out.data.data() + ((b * y + j) * x + i) * dim);
  return out;
}

inline std::string shared_kv_key(const std::string& base, const std::string& layer_type, int slot) {
  return fmt::format("{}@in.shared_kv_states.{}.{}", base, layer_type, slot);
}

inline KeyValue hf_shared_kv(const HookInputs& in, const std::string& base, const std::string& layer_type) {
  return {swap_axes_1_2(in.floats(shared_kv_key(base, layer_type, 0))),
          swap_axes_1_2(in.floats(shared_kv_key(base, layer_type, 1)))};
}

inline ops::RotaryTables hf_rotary(const HookInputs& in, const std::string& module) {
  return {in.floats(module + "@in.position_embeddings.0"), in.floats(module + "@in.position_embeddings.1")};
}

}  // namespace parity::gemma4_kv
