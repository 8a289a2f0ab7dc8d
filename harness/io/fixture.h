// Fixture: read-only access to an HDF5 fixture of format v1, or v2 with gradients (golden/README.md).
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

#include "io/hdf5_file.h"

namespace parity::harness {

class Fixture {
 public:
  static constexpr int64_t kSchemaVersion = 1;      // a forward fixture
  static constexpr int64_t kGradSchemaVersion = 2;  // v1 plus gradients (golden/README.md "Gradients")
  static constexpr std::string_view kGroups[] = {"meta", "inputs", "weights", "hooks", "outputs"};
  // v2 only: parameter gradients by HF name, module gradients by the hook key of the tensor they
  // are the gradient of, and the loss they start from (value, weights or labels).
  static constexpr std::string_view kGradGroups[] = {"grads", "grad_hooks", "loss"};

  explicit Fixture(std::filesystem::path path);
  // Opened without the crash probe (hdf5_file.h): the probe's child replays a Fixture's opening
  // with this, so the library meets the file in the same order of calls as the parent will.
  Fixture(std::filesystem::path path, H5File::Unprobed);

  const std::filesystem::path& path() const { return file_.path(); }
  const std::map<std::string, AttrValue>& meta() const { return meta_; }
  std::string meta_string(const std::string& key) const;  // throws when absent
  const nlohmann::json& config() const { return config_; }
  int64_t schema_version() const { return schema_version_; }
  bool has_gradients() const { return schema_version_ == kGradSchemaVersion; }

  // Entry names of a group ("weights", "hooks", ...) in the order the producer wrote them.
  const std::vector<std::string>& names(std::string_view group) const;
  bool has(std::string_view group, const std::string& name) const;
  DatasetInfo info(std::string_view group, const std::string& name) const;
  Tensor read(std::string_view group, const std::string& name) const;

 private:
  [[noreturn]] void fail(std::string_view where, std::string_view what) const { file_.fail(where, what); }
  void open();
  void read_meta();
  void check_run_dtype() const;

  H5File file_;
  std::map<std::string, AttrValue> meta_;
  nlohmann::json config_;
  int64_t schema_version_ = kSchemaVersion;
  std::map<std::string, std::vector<std::string>, std::less<>> names_;
};

}  // namespace parity::harness
