#include "model.h"

#include <charconv>

#include "gemma4.h"
#include "hf_config.h"
#include "olmoe.h"

namespace parity {

void ReferenceModel::replay_backward(const std::string& module, const HookInputs&, const GradInputs&, HookSink&) const {
  throw Error(fmt::format("[backward] the reference has no backward for module {} yet", module));
}

void ReferenceModel::forward_backward(const ForwardInputs&, const Loss&, HookSink&, const RoutingPolicy*) const {
  throw Error("[backward] the reference has no chained backward for this family yet");
}

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

}  // namespace parity
