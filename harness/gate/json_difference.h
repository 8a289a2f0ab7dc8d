// The first difference between two JSON documents, by path ("layers[5].num_key_value_heads"), so a
// message can name the key that differs rather than a whole per-layer table. Used to refuse a
// checkpoint or a second fixture that describes another model (cli_util.cpp, compare.cpp).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace parity::harness {

struct JsonDifference {
  std::string path;  // "" when the documents differ at the top
  nlohmann::ordered_json ours, theirs;
};

// Descends into arrays of equal length and into objects (every key of `ours`; a key `theirs`
// lacks compares as null). nullopt when equal.
std::optional<JsonDifference> first_json_difference(const std::string& path, const nlohmann::ordered_json& ours,
                                                    const nlohmann::ordered_json& theirs);

}  // namespace parity::harness
