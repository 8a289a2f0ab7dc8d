#include "gate/json_difference.h"

#include <fmt/format.h>

namespace parity::harness {

std::optional<JsonDifference> first_json_difference(const std::string& path, const nlohmann::ordered_json& ours,
                                                    const nlohmann::ordered_json& theirs) {
  if (ours == theirs) return std::nullopt;
  if (ours.is_array() && theirs.is_array() && ours.size() == theirs.size()) {
    for (size_t i = 0; i < ours.size(); ++i)
      if (auto d = first_json_difference(fmt::format("{}[{}]", path, i), ours[i], theirs[i])) return d;
  }
  if (ours.is_object() && theirs.is_object()) {
    for (const auto& [key, value] : ours.items()) {
      const nlohmann::ordered_json other = theirs.contains(key) ? theirs.at(key) : nlohmann::ordered_json();
      if (auto d = first_json_difference(path.empty() ? key : path + "." + key, value, other)) return d;
    }
  }
  return JsonDifference{path, ours, theirs};
}

}  // namespace parity::harness
