#include "logprobs/sources.h"

#include <fmt/format.h>

#include "errors.h"

namespace parity::harness {

void check_sources(const LogprobSources& s, const std::string& where) {
  const bool pair = s.train || s.rollout;
  if (s.run.has_value() == pair)
    throw InputError(fmt::format("{}: give a logprob run, or a train and a rollout fixture (not both, not neither)",
                                 where));
  if (pair && (!s.train || !s.rollout))
    throw InputError(fmt::format("{}: train and rollout come together", where));
  if (pair && *s.train == kReferenceSide && *s.rollout == kReferenceSide)
    throw InputError(fmt::format("{}: at most one side can be the reference", where));
}

}  // namespace parity::harness
