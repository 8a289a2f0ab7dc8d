#include "run/backward_order.h"

#include <limits>

#include "io/fixture_sources.h"
#include "models/model.h"

namespace parity::harness {

BackwardOrder::BackwardOrder(const Fixture& fixture) {
  const std::vector<std::string> keys = comparable_keys(fixture);
  for (size_t i = 0; i < keys.size(); ++i) {
    Span& s = spans_[parse_hook_key(keys[i]).module];
    if (s.first < 0) s.first = static_cast<int64_t>(i);
    s.last = static_cast<int64_t>(i);
  }
}

int64_t BackwardOrder::of_module(const std::string& module, bool output) const {
  auto it = spans_.find(module);
  if (it == spans_.end()) return std::numeric_limits<int64_t>::max();
  return -(output ? it->second.last : it->second.first) * 2 - (output ? 1 : 0);
}

int64_t BackwardOrder::of_key(const std::string& key) const {
  const HookKey k = parse_hook_key(key);
  return of_module(k.module, k.kind != HookKind::kInput);
}

std::vector<std::string> BackwardOrder::modules() const {
  std::vector<std::string> out;
  for (const auto& [module, span] : spans_) out.push_back(module);
  return out;
}

bool descends_from(const std::string& name, const std::string& ancestor) {
  return name.size() > ancestor.size() && name.starts_with(ancestor) && name[ancestor.size()] == '.';
}

std::string owner_of(const std::string& param, const std::vector<std::string>& modules) {
  std::string best;
  for (const std::string& m : modules)
    if (descends_from(param, m) && m.size() > best.size()) best = m;
  return best;
}

}  // namespace parity::harness
