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

// Backwards at the exact math.
// softcap: dy (in place) times d/dx tanh(x / c)·c = 1 − tanh²(x / c), x the logits before the cap.
void softcap_backward(const Array& logits_before, double cap, Array& dy);
// next_token_logprobs: from d loss / d logprobs [B, S − 1], d loss / d logits [B, S, V]: row s gets
// dlogprobs[b, s] · (onehot(ids[b, s + 1]) − softmax(logits[b, s])); the last position gets none.
Array next_token_logprobs_backward(const Array& logits, const IndexArray& input_ids, const Array& dlogprobs);

}  // namespace parity::ops
