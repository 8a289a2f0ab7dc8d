#include "model.h"

#include <charconv>
#include <regex>

#include "gemma4.h"
#include "hf_config.h"
#include "olmoe.h"

namespace parity {

std::unique_ptr<ReferenceModel> make_reference_model(const nlohmann::json& config, const WeightSource& weights,
                                                     const Numerics& numerics, bool keep_weights, Variants variants) {
  const std::string type = config_string(config, "model_type");
  if (type == "olmoe")
    return std::make_unique<Olmoe>(OlmoeConfig::from_hf(config), weights, numerics, keep_weights, variants);
  if (type == "gemma4_text" || type == "gemma4")
    return std::make_unique<Gemma4>(Gemma4Config::from_hf(config), weights, numerics, keep_weights, variants);
  throw Error(fmt::format("[config] model_type \"{}\" has no reference (olmoe, gemma4_text, gemma4)", type));
}

nlohmann::ordered_json resolved_config(const nlohmann::json& config) {
  const std::string type = config_string(config, "model_type");
  nlohmann::ordered_json out;
  if (type == "olmoe") {
    out["family"] = "olmoe";
    out.update(OlmoeConfig::from_hf(config).resolved());
  } else if (type == "gemma4_text" || type == "gemma4") {
    out["family"] = "gemma4";
    out.update(Gemma4Config::from_hf(config).resolved());
  } else {
    throw Error(fmt::format("[config] model_type \"{}\" has no reference (olmoe, gemma4_text, gemma4)", type));
  }
  return out;
}

int64_t decoder_layer_of(const std::string& key) {
  // "layers.<n>" followed by '.', '@' or the end; anchored on a dot so "xlayers.3" does not count.
  static const std::regex pattern(R"((?:^|\.)layers\.(\d+)(?:[.@]|$))");
  std::smatch m;
  if (!std::regex_search(key, m, pattern)) return -1;
  const std::string digits = m[1].str();
  int64_t layer = -1;
  // An index too large for int64 names no layer: the key then fails as one the reference lacks.
  if (std::from_chars(digits.data(), digits.data() + digits.size(), layer).ec != std::errc()) return -1;
  return layer;
}

}  // namespace parity
