// The first difference between two JSON documents, by path ("layers[5].num_key_value_heads"), so a
// message can name the key that differs rather than a whole per-layer table. Used to refuse a
// checkpoint or a second fixture that describes another model (model_difference).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace parity::harness {

struct JsonDifference {
  std::string path;  // "" when the documents differ at the top
  nlohmann::ordered_json ours, theirs;
};

// Whether two HF configs describe the same model: nullopt when they do, else the first difference.
// Both are compared as the reference resolves them (resolved_config), so another layout of the
// same config (Gemma-4's per_layer_config vs global_head_dim, the multimodal wrapper's
// text_config, OLMoE's top-level rope_theta) compares equal; a config the reference cannot resolve
// is compared as raw JSON without the keys that do not change the model (dtype, torch_dtype,
// transformers_version, use_cache, "_"-prefixed keys). The one "same model?" check: a checkpoint
// against its fixture, and the two dumps of `parity compare`.
std::optional<JsonDifference> model_difference(const nlohmann::json& ours, const nlohmann::json& theirs);

// Descends into arrays of equal length and into objects (every key of `ours`; a key `theirs`
// lacks compares as null). nullopt when equal.
std::optional<JsonDifference> first_json_difference(const std::string& path, const nlohmann::ordered_json& ours,
                                                    const nlohmann::ordered_json& theirs);

}  // namespace parity::harness
