#include "logprobs/listing.h"

#include <algorithm>

namespace parity::harness {

namespace {

std::vector<Alternative> alternatives(const std::optional<TopKTable>& table, int64_t index) {
  std::vector<Alternative> out;
  if (!table) return out;
  for (int64_t j = 0; j < table->k; ++j) {
    const auto at = static_cast<size_t>(index * table->k + j);
    out.push_back({table->ids[at], table->logprobs[at]});
  }
  return out;
}

}  // namespace

std::vector<ListedToken> list_tokens(const LogprobRun& run, const std::vector<TokenDiff>& tokens, int64_t context) {
  std::vector<ListedToken> out;
  for (const TokenDiff& t : tokens) {
    const int64_t begin = run.seq_offsets[static_cast<size_t>(t.at.sequence)];
    const int64_t end = run.seq_offsets[static_cast<size_t>(t.at.sequence) + 1];
    ListedToken listed{static_cast<int64_t>(out.size()) + 1, t, {}, {}, {}, {}};
    for (int64_t i = std::max(begin, t.at.index - context); i < t.at.index; ++i)
      listed.before.push_back(run.input_ids[static_cast<size_t>(i)]);
    for (int64_t i = t.at.index + 1; i < std::min(end, t.at.index + 1 + context); ++i)
      listed.after.push_back(run.input_ids[static_cast<size_t>(i)]);
    listed.train_top_k = alternatives(run.train_top_k, t.at.index);
    listed.rollout_top_k = alternatives(run.rollout_top_k, t.at.index);
    out.push_back(std::move(listed));
  }
  return out;
}

std::vector<int64_t> shown_ids(const std::vector<ListedToken>& listed) {
  std::vector<int64_t> ids;
  for (const ListedToken& l : listed) {
    ids.push_back(l.token.token_id);
    ids.insert(ids.end(), l.before.begin(), l.before.end());
    ids.insert(ids.end(), l.after.begin(), l.after.end());
    for (const auto* alts : {&l.train_top_k, &l.rollout_top_k})
      for (const Alternative& a : *alts) ids.push_back(a.id);
  }
  return ids;
}

}  // namespace parity::harness
