// Reading HF config.json fields with errors that name the field (a config is user input).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace parity {

int64_t config_int(const nlohmann::json& config, const std::string& key);
double config_double(const nlohmann::json& config, const std::string& key);
bool config_bool(const nlohmann::json& config, const std::string& key);
std::string config_string(const nlohmann::json& config, const std::string& key);
// Absent or null -> nullopt; present with the wrong type -> error.
std::optional<int64_t> config_optional_int(const nlohmann::json& config, const std::string& key);
std::optional<double> config_optional_double(const nlohmann::json& config, const std::string& key);
std::optional<bool> config_optional_bool(const nlohmann::json& config, const std::string& key);
std::optional<std::string> config_optional_string(const nlohmann::json& config, const std::string& key);

}  // namespace parity
