// The LM head's last steps, after lm_head:
//   softcap             Gemma4ForCausalLM's final_logit_softcapping c: logits = tanh(logits / c) · c,
//                       three tensor ops, each rounded to T (the lm_head hook sees the logits before it);
//   next_token_logprobs the fixture's /outputs/logprobs: log_softmax(float32(logits))[b, s, ids[b, s+1]],
//                       in float32 whatever T is (golden/README.md).
#pragma once

#include "array.h"
#include "numerics.h"

namespace parity::ops {

// In place on logits [..., V].
void softcap(Array& logits, double cap, const Numerics& numerics);

// logits [B, S, V], input_ids [B, S] -> [B, S - 1]; throws naming an id outside 0..V-1.
Array next_token_logprobs(const Array& logits, const IndexArray& input_ids, const Numerics& numerics);

}  // namespace parity::ops
