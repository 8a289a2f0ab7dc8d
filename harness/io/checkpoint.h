// Checkpoint: a WeightSource over a local Hugging Face checkpoint folder of safetensors files
// (`model.safetensors`, or shards listed by `model.safetensors.index.json`), plus its config.json.
//
// Construction reads and validates only the JSON headers, so opening a 50 GB checkpoint costs a
// few MB; each shard is memory-mapped on the first get() that needs it and a tensor's bytes are
// touched only when it is read, so a model can be evaluated layer by layer with little RAM (the
// mapped pages are clean file pages the kernel can drop). F32, BF16 and F16 widen to float exactly.
//
// MoE experts: transformers v5 fuses per-expert Linear weights into `experts.gate_up_proj`
// [E, 2I, H] and `experts.down_proj` [E, H, I] at load, while Hub checkpoints store
// `experts.{e}.{gate,up,down}_proj.weight`. get() and has() answer the fused names from the
// per-expert ones, so a model reference can ask by its v5 state_dict names either way.
//
// Every error is a one-line InputError naming the folder, the file and the tensor. get() may be
// called from several threads (the lazy mapping is guarded by a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "errors.h"
#include "io/tensor.h"
#include "weights.h"

namespace parity::harness {

class Checkpoint final : public parity::WeightSource {
 public:
  static constexpr std::string_view kSingleFile = "model.safetensors";
  static constexpr std::string_view kIndexFile = "model.safetensors.index.json";
  static constexpr std::string_view kConfigFile = "config.json";
  // A safetensors header (or index.json) larger than this is a corrupt length, not a real model.
  static constexpr uint64_t kMaxJsonBytes = uint64_t{100} << 20;

  // Validates the folder, index.json, config.json (when present) and every shard header.
  explicit Checkpoint(std::filesystem::path dir);
  ~Checkpoint() override;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  bool has_config() const { return config_.has_value(); }
  // The parsed config.json (a JSON object); throws InputError when the folder has none.
  const nlohmann::json& config() const;
  // Every tensor name stored in the checkpoint, sorted (fused expert names are not listed).
  std::vector<std::string> names() const;

  // True for stored tensors and for fusable `<prefix>.experts.{gate_up_proj,down_proj}`.
  bool has(const std::string& name) const override;
  // Throws InputError when absent, not F32/BF16/F16, or (fused) an expert tensor is missing or
  // mis-shaped.
  Weight get(const std::string& name) const override;

 private:
  struct Shard;  // one safetensors file and its lazy mapping
  struct Entry {
    size_t shard = 0;
    std::string dtype;  // safetensors name: "F32", "BF16", ...
    Shape shape;
    uint64_t begin = 0;  // byte offsets relative to the shard's data start
    uint64_t end = 0;
  };
  struct FusedName {
    std::string experts;  // "<prefix>.experts."
    bool gate_up = false;  // gate_up_proj, else down_proj
  };

  // Throws InputError "checkpoint DIR: FILE: WHAT" (FILE left out when empty).
  [[noreturn]] void fail(std::string_view file, std::string_view what) const;
  nlohmann::json read_json_file(const std::string& file) const;
  void load_index();
  void load_config();
  size_t load_shard(const std::string& file);
  void check_metadata(const std::string& file, const nlohmann::json& metadata) const;
  Entry parse_entry(size_t shard, const std::string& name, const nlohmann::json& value, uint64_t data_size) const;

  static std::optional<FusedName> split_fused(std::string_view name);
  bool is_fusable(const std::string& name) const;
  Weight fuse_experts(const std::string& name, const FusedName& fused) const;
  const Entry& expert_entry(const std::string& fused, const std::string& name, const Shape& shape) const;

  void require_float(const std::string& name, const Entry& entry) const;
  const std::byte* shard_data(size_t shard) const;
  void read_into(const Entry& entry, float* out) const;

  std::filesystem::path dir_;
  std::optional<nlohmann::json> config_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::map<std::string, Entry, std::less<>> tensors_;
  mutable std::mutex map_mutex_;
};

}  // namespace parity::harness
