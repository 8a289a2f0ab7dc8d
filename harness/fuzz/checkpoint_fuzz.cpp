// Fuzz target: the safetensors checkpoint reader (headers, offsets, dtypes, shapes, the shard index,
// fused expert names). The bytes are a checkpoint folder, split into files at each "\n--8<--\n":
//   part 0  config.json                    (left out when empty)
//   part 1  model.safetensors.index.json   (when empty: a single model.safetensors, part 2)
//   part 2+ the shards, named shard-1.safetensors, shard-2.safetensors, ... (or model.safetensors)
// The folder is opened, every tensor listed and read, and the fused expert names the MoE
// references ask for are read too.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "io/checkpoint.h"

namespace {

using namespace parity::harness;

constexpr std::string_view kSeparator = "\n--8<--\n";

std::vector<std::string_view> split(std::string_view bytes) {
  std::vector<std::string_view> parts;
  for (size_t at = bytes.find(kSeparator); at != std::string_view::npos; at = bytes.find(kSeparator)) {
    parts.push_back(bytes.substr(0, at));
    bytes.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(bytes);
  return parts;
}

void write_folder(const std::vector<std::string_view>& parts) {
  const auto& dir = parity::fuzz::scratch();
  dir.clear();
  if (!parts[0].empty()) dir.write(std::string(Checkpoint::kConfigFile), parts[0]);
  const bool sharded = parts.size() > 1 && !parts[1].empty();
  if (sharded) dir.write(std::string(Checkpoint::kIndexFile), parts[1]);
  for (size_t i = 2; i < parts.size(); ++i)
    dir.write(sharded ? "shard-" + std::to_string(i - 1) + ".safetensors" : std::string(Checkpoint::kSingleFile),
              parts[i]);
}

// "<prefix>.experts.gate_up_proj" / ".down_proj" for every per-expert tensor name stored.
std::vector<std::string> fused_names(const std::vector<std::string>& names) {
  std::vector<std::string> fused;
  for (const std::string& name : names) {
    const size_t at = name.find(".experts.");
    if (at == std::string::npos) continue;
    const std::string prefix = name.substr(0, at + 9);
    fused.push_back(prefix + "gate_up_proj");
    fused.push_back(prefix + "down_proj");
  }
  return fused;
}

void read(const Checkpoint& checkpoint, const std::string& name) {
  if (!checkpoint.has(name)) return;
  try {
    (void)checkpoint.get(name);
  } catch (const parity::Error&) {  // this tensor refused; the others are still read
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return parity::fuzz::run_one([&] {
    write_folder(split(parity::fuzz::as_bytes(data, size)));
    const Checkpoint checkpoint(parity::fuzz::scratch().path());
    if (checkpoint.has_config()) (void)checkpoint.config();
    const std::vector<std::string> names = checkpoint.names();
    for (const std::string& name : names) read(checkpoint, name);
    for (const std::string& name : fused_names(names)) read(checkpoint, name);
  });
}
