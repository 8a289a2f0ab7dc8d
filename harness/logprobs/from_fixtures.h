// Logprob runs derived from model fixtures (golden/README.md) of the same inputs: HF fp32 vs HF
// bf16, HF vs an engine dump, or a fixture vs the C++ reference's own chained forward.
// Each batch row is one sequence; token s (s >= 1) is scored when it and token s - 1 are real
// (attention_mask 1), with logprob /outputs/logprobs[b, s - 1]. Each side's top-k alternatives come
// from its /outputs/logits[b, s - 1] (log_softmax in f64 of the stored logits).
#pragma once

#include <optional>

#include "io/fixture.h"
#include "logprobs/run.h"
#include "numerics.h"
#include "weights.h"

namespace parity::harness {

// InputError when the fixtures do not score the same tokens (input_ids, attention_mask differ).
LogprobRun run_from_fixtures(const Fixture& train, const Fixture& rollout, int64_t top_k);

// The reference's chained forward (its own routing, like an engine) on `fixture`'s inputs, with
// `weights` (nullptr: the fixture's) in `precision` (nullopt: the fixture's run dtype).
// reference_side: "train" or "rollout", the side the reference plays; the fixture plays the other.
LogprobRun run_against_reference(const Fixture& fixture, const WeightSource* weights,
                                 std::optional<Precision> precision, const std::string& reference_side,
                                 int64_t top_k);

}  // namespace parity::harness
