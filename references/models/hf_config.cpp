#include "hf_config.h"

#include "error.h"

namespace parity {

namespace {

const nlohmann::json& field(const nlohmann::json& config, const std::string& key) {
  PARITY_CHECK(config.is_object() && config.contains(key) && !config.at(key).is_null(),
               "[config] required field \"{}\" is missing", key);
  return config.at(key);
}

}  // namespace

int64_t config_int(const nlohmann::json& config, const std::string& key) {
  const nlohmann::json& v = field(config, key);
  PARITY_CHECK(v.is_number_integer(), "[config] \"{}\" must be an integer, got {}", key, v.dump());
  return v.get<int64_t>();
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
