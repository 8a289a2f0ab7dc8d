// The token lists a person reads: each listed token (catastrophic or non-finite) with its context
// window in its sequence and both sides' top-k alternatives when the run has them.
#pragma once

#include <vector>

#include "logprobs/metrics.h"

namespace parity::harness {

struct Alternative {
  int64_t id = 0;
  double logprob = 0;
};

struct ListedToken {
  int64_t rank = 0;  // 1 = worst
  TokenDiff token;
  std::vector<int64_t> before, after;  // up to `context` ids of the same sequence on each side
  std::vector<Alternative> train_top_k, rollout_top_k;  // empty when the run has none
};

std::vector<ListedToken> list_tokens(const LogprobRun& run, const std::vector<TokenDiff>& tokens, int64_t context);

// Every id a listing shows (tokens, contexts, alternatives): what a tokenizer must decode.
std::vector<int64_t> shown_ids(const std::vector<ListedToken>& listed);

}  // namespace parity::harness
