// Fixture: read-only access to an HDF5 fixture of format v1 (golden/README.md).
// Opening validates the whole skeleton (HDF5 signature, groups, schema version, meta, config),
// so every later failure is about one dataset. Every error is an InputError whose one-line
// message names the file and the dataset; the CLI turns it into exit code 2.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "hdf5_handle.h"
#include "tensor.h"

namespace parity::harness {

// Bad input (missing or corrupt file, wrong schema, bad dataset): exit code 2.
class InputError : public parity::Error {
 public:
  using parity::Error::Error;
};

using AttrValue = std::variant<int64_t, double, std::string>;
std::string attr_str(const AttrValue& value);

struct DatasetInfo {
  std::string name;         // key inside its group, e.g. "model.layers.0.mlp@in"
  DType dtype = DType::F32;
  Shape shape;
  std::string link_target;  // "/hooks/..." when the entry is a soft link to an identical tensor
  std::string module;       // class of the module that produced a hook tensor, if recorded
  std::string derived;      // how the dumper derived it, when HF did not return it directly
};

class Fixture {
 public:
  static constexpr int64_t kSchemaVersion = 1;
  static constexpr std::string_view kGroups[] = {"meta", "inputs", "weights", "hooks", "outputs"};

  explicit Fixture(std::filesystem::path path);

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, AttrValue>& meta() const { return meta_; }
  std::string meta_string(const std::string& key) const;  // throws when absent
  const nlohmann::json& config() const { return config_; }

  // Entry names of a group ("weights", "hooks", ...) in the order the producer wrote them.
  const std::vector<std::string>& names(std::string_view group) const;
  bool has(std::string_view group, const std::string& name) const;
  DatasetInfo info(std::string_view group, const std::string& name) const;
  Tensor read(std::string_view group, const std::string& name) const;

 private:
  [[noreturn]] void fail(std::string_view where, std::string_view what) const;
  H5Handle open_dataset(std::string_view group, const std::string& name) const;
  DType dataset_dtype(hid_t dataset, std::string_view where) const;
  std::string link_target(const std::string& where) const;  // "" unless a soft link
  // A string attribute of a dataset; fails when present but not a single string.
  std::optional<std::string> optional_string_attr(hid_t dataset, const char* name, std::string_view where) const;
  void read_meta();
  std::vector<std::string> list_group(std::string_view group) const;

  std::filesystem::path path_;
  H5Handle file_;
  std::map<std::string, AttrValue> meta_;
  nlohmann::json config_;
  std::map<std::string, std::vector<std::string>, std::less<>> names_;
};

}  // namespace parity::harness
