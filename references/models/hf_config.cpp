#include "hf_config.h"

#include "error.h"

namespace parity {

namespace {

const nlohmann::json& field(const nlohmann::json& config, const std::string& key) {
  PARITY_CHECK(config.is_object() && config.contains(key) && !config.at(key).is_null(),
               "[config] required field \"{}\" is missing", key);
  return config.at(key);
}

// Upper bounds on the sizes a config may claim, far above any released model (Llama-3 405B: hidden
// 16384, 126 layers; Gemma-4: vocab 262144, head_dim 512; OLMoE: 64 experts). A config is user
// input: one hostile integer (num_hidden_layers = 2^40, hidden_size = 1e9) must be refused here,
// naming the field, before it sizes a module list or a rotary table.
struct SizeBound {
  std::string_view key;
  int64_t max;
};
constexpr SizeBound kSizeBounds[] = {
    {"num_hidden_layers", 4096},       {"hidden_size", 1 << 18},          {"intermediate_size", 1 << 21},
    {"moe_intermediate_size", 1 << 21}, {"num_attention_heads", 4096},     {"num_key_value_heads", 4096},
    {"num_global_key_value_heads", 4096}, {"head_dim", 1 << 14},          {"vocab_size", 1 << 23},
    {"num_experts", 1 << 14},          {"num_experts_per_tok", 1 << 14},  {"top_k_experts", 1 << 14},
    {"hidden_size_per_layer_input", 1 << 18}, {"sliding_window", int64_t{1} << 32},
};

}  // namespace

int64_t config_int(const nlohmann::json& config, const std::string& key) {
  const nlohmann::json& v = field(config, key);
  PARITY_CHECK(v.is_number_integer(), "[config] \"{}\" must be an integer, got {}", key, v.dump());
  const int64_t value = v.get<int64_t>();
  for (const SizeBound& b : kSizeBounds)
    if (b.key == key)
      PARITY_CHECK(value >= 0 && value <= b.max, "[config] \"{}\" = {} is not a size this reference can hold (0..{})",
                   key, value, b.max);
  return value;
}

double config_double(const nlohmann::json& config, const std::string& key) {
  const nlohmann::json& v = field(config, key);
  PARITY_CHECK(v.is_number(), "[config] \"{}\" must be a number, got {}", key, v.dump());
  return v.get<double>();
}

bool config_bool(const nlohmann::json& config, const std::string& key) {
  const nlohmann::json& v = field(config, key);
  PARITY_CHECK(v.is_boolean(), "[config] \"{}\" must be true or false, got {}", key, v.dump());
  return v.get<bool>();
}

std::string config_string(const nlohmann::json& config, const std::string& key) {
  const nlohmann::json& v = field(config, key);
  PARITY_CHECK(v.is_string(), "[config] \"{}\" must be a string, got {}", key, v.dump());
  return v.get<std::string>();
}

std::optional<int64_t> config_optional_int(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || config.at(key).is_null()) return std::nullopt;
  return config_int(config, key);
}

std::optional<double> config_optional_double(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || config.at(key).is_null()) return std::nullopt;
  return config_double(config, key);
}

std::optional<bool> config_optional_bool(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || config.at(key).is_null()) return std::nullopt;
  return config_bool(config, key);
}

std::optional<std::string> config_optional_string(const nlohmann::json& config, const std::string& key) {
  if (!config.contains(key) || config.at(key).is_null()) return std::nullopt;
  return config_string(config, key);
}

}  // namespace parity
