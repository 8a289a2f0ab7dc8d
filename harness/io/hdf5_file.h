// H5File: read-only, typed access to the datasets and attributes of one HDF5 file: what every
// parity file format shares (fixtures: fixture.h; logprob runs: logprobs/run.h). A dataset's
// `dtype` attribute names the torch dtype; bf16 is stored as uint16 bits and bool as uint8
// (golden/README.md). Every error is an InputError whose one-line message names the file, e.g.
// "fixture x.h5: /hooks/a: missing dataset"; the CLI turns it into exit code 2.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "errors.h"
#include "io/hdf5_handle.h"
#include "io/tensor.h"

namespace parity::harness {

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

class H5File {
 public:
  // kind names the format in messages ("fixture", "logprob run"). The file is probed first in a
  // forked child (probe_in_child, hdf5_file.cpp); `replay`, if given, runs in that child before
  // the generic metadata walk and should repeat what the caller does right after opening (a
  // Fixture replays its own opening), since a libhdf5 crash on a corrupted file depends on the
  // order of calls that reach it.
  H5File(std::filesystem::path path, std::string kind, std::function<void()> replay = {});
  // Opened without a probe or the checks before it: only for the probe's own child (and a replay
  // inside it).
  struct Unprobed {};
  H5File(std::filesystem::path path, std::string kind, Unprobed);

  const std::filesystem::path& path() const { return path_; }
  [[noreturn]] void fail(std::string_view where, std::string_view what) const;

  bool exists(const std::string& link) const;  // "/inputs/input_ids"
  // Entry names of a group in the order the producer wrote them (by name if it did not track order).
  std::vector<std::string> list_group(const std::string& group) const;
  // The same, descending into subgroups: a subgroup's entries are listed as "sub/name" (a producer
  // that put a '/' in a name made a group of it), so each is still a dataset the caller can judge;
  // an empty subgroup is listed as itself (reading it then fails, naming it).
  std::vector<std::string> list_datasets(const std::string& group) const;
  // The scalar integer, float and string attributes of a group or dataset (others are skipped).
  std::map<std::string, AttrValue> attributes(const std::string& object) const;
  // A dataset holding one string; nullopt when absent or not a string.
  std::optional<std::string> string_dataset(const std::string& dataset) const;

  DatasetInfo info(const std::string& dataset) const;  // name = the last path component
  Tensor read(const std::string& dataset) const;

 private:
  void check_is_hdf5() const;
  void open();
  void probe_in_child(const std::function<void()>& replay) const;
  // visited: object addresses already walked. A corrupted file can make a group its own member
  // (found by ci/fuzz), which without it is a walk of exponential length.
  void walk_metadata(const std::string& group, int depth, std::set<haddr_t>& visited) const;
  H5Handle open_dataset(const std::string& where) const;
  void check_claimed_size(const std::string& where, hid_t dataset, size_t count) const;
  DType dataset_dtype(hid_t dataset, std::string_view where) const;
  std::string link_target(const std::string& where) const;  // "" unless a soft link
  // A string attribute of a dataset; fails when present but not a single string.
  std::optional<std::string> optional_string_attr(hid_t dataset, const char* name, std::string_view where) const;

  std::filesystem::path path_;
  std::string kind_;
  H5Handle file_;
};

}  // namespace parity::harness
