#include "gate/json_difference.h"

#include <fmt/format.h>

#include "error.h"
#include "models/model.h"  // resolved_config

namespace parity::harness {

namespace {

// A config without what does not change the model (the run dtype, versions, caching, private keys).
nlohmann::ordered_json model_keys(const nlohmann::json& config) {
  if (!config.is_object()) return config;
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [key, value] : config.items()) {
    if (key == "dtype" || key == "torch_dtype" || key == "transformers_version" || key == "use_cache" ||
        key.starts_with("_"))
      continue;
    out[key] = value.is_object() ? model_keys(value) : nlohmann::ordered_json(value);
  }
  return out;
}

std::optional<nlohmann::ordered_json> resolved_or_null(const nlohmann::json& config) {
  try {
    return resolved_config(config);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// The first difference in `ours`' key order; when `ours` agrees with every key of `theirs` it
// holds, the first key only `theirs` holds (first_json_difference would name the whole config).
std::optional<JsonDifference> config_difference(const nlohmann::ordered_json& ours,
                                                const nlohmann::ordered_json& theirs) {
  std::optional<JsonDifference> d = first_json_difference("", ours, theirs);
  if (d && d->path.empty() && ours.is_object() && theirs.is_object())
    for (const auto& [key, value] : theirs.items())
      if (!ours.contains(key)) return JsonDifference{key, nullptr, value};
  return d;
}

}  // namespace


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

namespace parity::harness {

std::optional<JsonDifference> model_difference(const nlohmann::json& ours, const nlohmann::json& theirs) {
  std::optional<nlohmann::ordered_json> a = resolved_or_null(ours), b = resolved_or_null(theirs);
  if (!a || !b) a = model_keys(ours), b = model_keys(theirs);
  return config_difference(*a, *b);
}

}  // namespace parity::harness
