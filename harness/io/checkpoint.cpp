#include "io/checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace parity::harness {

// Safetensors stores little-endian data; we copy it bit for bit into host floats.
static_assert(std::endian::native == std::endian::little, "checkpoint.cpp assumes a little-endian host");

namespace {

using nlohmann::json;

// Names and dtypes come from the file; escaping control bytes keeps every message on one line.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out;
}

std::string tensor_label(std::string_view name) { return fmt::format("tensor {}", printable(name)); }

// Bits per element of every dtype safetensors defines, so byte lengths are checked even for the
// tensors get() will refuse (an I64 buffer, an FP8 scale) and an unknown name means corruption.
std::optional<int> dtype_bits(std::string_view dtype) {
  static constexpr std::pair<std::string_view, int> kBits[] = {
      {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6},  // packed sub-byte floats
      {"BOOL", 8},  {"U8", 8},      {"I8", 8},      {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
      {"F8_E4M3FNUZ", 8},           {"F8_E5M2FNUZ", 8},
      {"I16", 16},  {"U16", 16},    {"F16", 16},    {"BF16", 16},
      {"I32", 32},  {"U32", 32},    {"F32", 32},
      {"I64", 64},  {"U64", 64},    {"F64", 64},    {"C64", 64},
  };
  for (const auto& [name, bits] : kBits) {
    if (name == dtype) return bits;
  }
  return std::nullopt;
}

// A JSON integer as int64; nullopt for floats, strings, and unsigned values beyond int64.
std::optional<int64_t> json_int(const json& value) {
  if (value.is_number_unsigned()) {
    auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

// Parses `text`, rejecting a key repeated inside one object: nlohmann keeps the last one
// silently, which would hide a tensor listed twice. On failure sets `error` and returns nullopt.
std::optional<json> parse_strict_json(const std::string& text, std::string& error) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::optional<std::string> duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.back().insert(parsed.get<std::string>()).second) {
      if (!duplicate) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json result;
  try {
    result = json::parse(text, callback);
  } catch (const json::parse_error& e) {
    error = fmt::format("not valid JSON (parse error at byte {})", e.byte);
    return std::nullopt;
  } catch (const json::exception& e) {  // out_of_range: a number beyond double (found by ci/fuzz)
    error = fmt::format("not valid JSON ({})", e.what());
    return std::nullopt;
  }
  if (duplicate) {
    error = fmt::format("duplicate key {}", printable(*duplicate));
    return std::nullopt;
  }
  return result;
}

std::optional<std::string> read_bytes(const std::filesystem::path& path, uint64_t offset, uint64_t count) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(count, '\0');
  if (!in.seekg(static_cast<std::streamoff>(offset))) return std::nullopt;
  if (!in.read(bytes.data(), static_cast<std::streamsize>(count))) return std::nullopt;
  return bytes;
}

uint64_t little_endian_u64(const std::string& bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return value;
}

// index.json names shards relative to the folder; anything else (a path, "..") could read a file
// outside the checkpoint, which HF's save_pretrained never writes.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text(int error) { return std::system_category().message(error); }

// Maps the whole file read-only; the descriptor closes on return (the mapping outlives it).
// The size must still be the one whose header we validated: offsets past a shrunken file would
// turn into SIGBUS instead of an error.
const std::byte* map_whole_file(const std::filesystem::path& path, uint64_t expected_size, std::string& error) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    error = fmt::format("cannot open ({})", errno_text(errno));
    return nullptr;
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    error = fmt::format("cannot stat ({})", errno_text(errno));
    return nullptr;
  }
  if (static_cast<uint64_t>(info.st_size) != expected_size) {
    error = fmt::format("size changed from {} to {} bytes since the checkpoint was opened", expected_size,
                        info.st_size);
    return nullptr;
  }
  void* address = ::mmap(nullptr, expected_size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (address == MAP_FAILED) {
    error = fmt::format("cannot mmap ({})", errno_text(errno));
    return nullptr;
  }
  return static_cast<const std::byte*>(address);
}

}  // namespace

// One safetensors file. Owns its mapping (RAII munmap); `map` is set once, under map_mutex_.
struct Checkpoint::Shard {
  Shard(std::string f, uint64_t s, uint64_t d) : file(std::move(f)), size(s), data_start(d) {}
  ~Shard() {
    if (map != nullptr) ::munmap(const_cast<std::byte*>(map), size);
  }
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  std::string file;         // name inside the folder
  uint64_t size = 0;        // file size when the header was validated
  uint64_t data_start = 0;  // 8 + header length
  const std::byte* map = nullptr;
};

Checkpoint::Checkpoint(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) fail("", "no such folder");
  const bool single = std::filesystem::exists(dir_ / kSingleFile, ec);
  const bool sharded = std::filesystem::exists(dir_ / kIndexFile, ec);
  // transformers would silently prefer the single file; with both, which one was meant is a guess.
  if (single && sharded) fail("", fmt::format("holds both {} and {}; remove one", kSingleFile, kIndexFile));
  if (!single && !sharded) {
    fail("", fmt::format("neither {} nor {}; not a safetensors checkpoint", kSingleFile, kIndexFile));
  }
  if (single) {
    load_shard(std::string(kSingleFile));
  } else {
    load_index();
  }
  load_config();
}

Checkpoint::~Checkpoint() = default;

void Checkpoint::fail(std::string_view file, std::string_view what) const {
  if (file.empty()) throw InputError(fmt::format("checkpoint {}: {}", dir_.string(), what));
  throw InputError(fmt::format("checkpoint {}: {}: {}", dir_.string(), printable(file), what));
}

const nlohmann::json& Checkpoint::config() const {
  if (!config_) fail("", fmt::format("no {}", kConfigFile));
  return *config_;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

nlohmann::json Checkpoint::read_json_file(const std::string& file) const {
  const std::filesystem::path path = dir_ / file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(file, "not a regular file");
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(file, fmt::format("cannot stat ({})", ec.message()));
  if (size > kMaxJsonBytes) fail(file, fmt::format("{} bytes, more than the {}-byte limit", size, kMaxJsonBytes));
  std::optional<std::string> text = read_bytes(path, 0, size);
  if (!text) fail(file, "cannot read");
  std::string error;
  std::optional<json> parsed = parse_strict_json(*text, error);
  if (!parsed) fail(file, error);
  if (!parsed->is_object()) fail(file, "not a JSON object");
  return *std::move(parsed);
}

void Checkpoint::load_config() {
  std::error_code ec;
  if (!std::filesystem::exists(dir_ / kConfigFile, ec)) return;  // config() reports it when asked
  config_ = read_json_file(std::string(kConfigFile));
}

// Loads every shard the index names, then checks each listed tensor is in the shard it names.
// Tensors a shard holds beyond the index are kept (transformers loads every key of every shard).
void Checkpoint::load_index() {
  const std::string index_file(kIndexFile);
  const json index = read_json_file(index_file);
  if (auto metadata = index.find("metadata"); metadata != index.end() && !metadata->is_object()) {
    fail(index_file, "metadata is not an object");
  }
  auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object()) fail(index_file, "no weight_map object");
  if (weight_map->empty()) fail(index_file, "weight_map is empty");

  std::set<std::string> loaded;
  for (const auto& [tensor, shard] : weight_map->items()) {
    const std::string where = fmt::format("weight_map: {}", tensor_label(tensor));
    if (!shard.is_string()) fail(index_file, fmt::format("{}: shard is not a string", where));
    const auto& file = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(file)) fail(index_file, fmt::format("{}: shard '{}' is not a file name", where, file));
    if (loaded.contains(file)) continue;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(dir_ / file, ec)) {
      fail(index_file, fmt::format("{}: names shard {}, which does not exist", where, printable(file)));
    }
    load_shard(file);
    loaded.insert(file);
  }
  for (const auto& [tensor, shard] : weight_map->items()) {
    const auto& file = shard.get_ref<const std::string&>();
    auto it = tensors_.find(tensor);
    if (it == tensors_.end()) {
      fail(file, fmt::format("{} is listed in {} but absent", tensor_label(tensor), kIndexFile));
    }
    const std::string& actual = shards_[it->second.shard]->file;
    if (actual != file) {
      fail(file, fmt::format("{} is listed in {} for this shard but stored in {}", tensor_label(tensor), kIndexFile,
                             printable(actual)));
    }
  }
}

// Reads and validates one file's header (never its data) and registers its tensors.
size_t Checkpoint::load_shard(const std::string& file) {
  const std::filesystem::path path = dir_ / file;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(file, "not a regular file");
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail(file, fmt::format("cannot stat ({})", ec.message()));
  if (size < 8) fail(file, fmt::format("{} bytes, too short for the 8-byte header length; truncated?", size));
  std::optional<std::string> prefix = read_bytes(path, 0, 8);
  if (!prefix) fail(file, "cannot read the header length");
  const uint64_t header_size = little_endian_u64(*prefix);
  if (header_size > kMaxJsonBytes) {
    fail(file, fmt::format("header length {} exceeds the {}-byte limit; not a safetensors file?", header_size,
                           kMaxJsonBytes));
  }
  if (header_size > size - 8) {
    fail(file, fmt::format("header length {} runs past the end of the {}-byte file; truncated?", header_size, size));
  }
  std::optional<std::string> text = read_bytes(path, 8, header_size);
  if (!text) fail(file, "cannot read the header");
  std::string error;
  std::optional<json> header = parse_strict_json(*text, error);
  if (!header) fail(file, fmt::format("header: {}", error));
  if (!header->is_object()) fail(file, "header is not a JSON object");

  const size_t index = shards_.size();
  shards_.push_back(std::make_unique<Shard>(file, size, 8 + header_size));
  const uint64_t data_size = size - 8 - header_size;
  for (const auto& [name, value] : header->items()) {
    if (name == "__metadata__") {
      check_metadata(file, value);
      continue;
    }
    Entry entry = parse_entry(index, name, value, data_size);
    auto [it, inserted] = tensors_.try_emplace(name, std::move(entry));
    if (!inserted) {
      const std::string& other = shards_[it->second.shard]->file;
      fail(file, fmt::format("{} is also stored in {}", tensor_label(name), printable(other)));
    }
  }
  return index;
}

void Checkpoint::check_metadata(const std::string& file, const nlohmann::json& metadata) const {
  bool ok = metadata.is_object();
  for (auto it = metadata.begin(); ok && it != metadata.end(); ++it) ok = it->is_string();
  if (!ok) fail(file, "header: __metadata__ is not a map of strings");
}

Checkpoint::Entry Checkpoint::parse_entry(size_t shard, const std::string& name, const nlohmann::json& value,
                                          uint64_t data_size) const {
  const std::string& file = shards_[shard]->file;
  const std::string label = tensor_label(name);
  if (!value.is_object()) fail(file, fmt::format("{}: entry is not an object", label));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) fail(file, fmt::format("{}: missing {}", label, key));
  }
  Entry entry;
  entry.shard = shard;

  const json& dtype = value.at("dtype");
  if (!dtype.is_string()) fail(file, fmt::format("{}: dtype is not a string", label));
  entry.dtype = dtype.get<std::string>();
  std::optional<int> bits = dtype_bits(entry.dtype);
  if (!bits) fail(file, fmt::format("{}: unknown safetensors dtype '{}'", label, printable(entry.dtype)));

  const json& shape = value.at("shape");
  if (!shape.is_array()) fail(file, fmt::format("{}: shape is not an array", label));
  for (const json& dim : shape) {
    std::optional<int64_t> d = json_int(dim);
    if (!d) fail(file, fmt::format("{}: shape holds a non-integer dimension", label));
    if (*d < 0) fail(file, fmt::format("{}: negative dimension {} in shape", label, *d));
    entry.shape.push_back(*d);
  }
  std::optional<int64_t> count = checked_numel(entry.shape);
  if (!count) fail(file, fmt::format("{}: shape {} is too large to be a tensor", label, shape_str(entry.shape)));

  const json& offsets = value.at("data_offsets");
  std::optional<int64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = json_int(offsets[0]);
    end = json_int(offsets[1]);
  }
  if (!begin || !end || *begin < 0 || *end < 0) {
    fail(file, fmt::format("{}: data_offsets is not two non-negative integers", label));
  }
  entry.begin = static_cast<uint64_t>(*begin);
  entry.end = static_cast<uint64_t>(*end);
  if (entry.end < entry.begin) {
    fail(file, fmt::format("{}: data_offsets [{}, {}] end before they begin", label, entry.begin, entry.end));
  }
  if (entry.end > data_size) {
    fail(file, fmt::format("{}: data_offsets [{}, {}] run past the {} data bytes of the file; truncated?", label,
                           entry.begin, entry.end, data_size));
  }
  // numel <= 2^40 and bits <= 64, so the product cannot overflow.
  const uint64_t needed_bits = static_cast<uint64_t>(*count) * static_cast<uint64_t>(*bits);
  if ((entry.end - entry.begin) * 8 != needed_bits) {
    fail(file, fmt::format("{}: holds {} bytes, but {} {} needs {}", label, entry.end - entry.begin, entry.dtype,
                           shape_str(entry.shape), needed_bits / 8.0));
  }
  return entry;
}

std::optional<Checkpoint::FusedName> Checkpoint::split_fused(std::string_view name) {
  constexpr std::string_view kExperts = ".experts.";
  constexpr std::pair<std::string_view, bool> kSuffixes[] = {{"gate_up_proj", true}, {"down_proj", false}};
  for (const auto& [suffix, gate_up] : kSuffixes) {
    if (!name.ends_with(suffix)) continue;
    std::string_view head = name.substr(0, name.size() - suffix.size());
    if (head.size() > kExperts.size() && head.ends_with(kExperts)) return FusedName{std::string(head), gate_up};
  }
  return std::nullopt;
}

bool Checkpoint::is_fusable(const std::string& name) const {
  std::optional<FusedName> fused = split_fused(name);
  return fused && tensors_.contains(fused->experts + "0.gate_proj.weight");
}

bool Checkpoint::has(const std::string& name) const { return tensors_.contains(name) || is_fusable(name); }

Weight Checkpoint::get(const std::string& name) const {
  if (auto it = tensors_.find(name); it != tensors_.end()) {
    require_float(name, it->second);
    Weight weight{it->second.shape, std::vector<float>(static_cast<size_t>(*checked_numel(it->second.shape)))};
    read_into(it->second, weight.data.data());
    return weight;
  }
  if (is_fusable(name)) return fuse_experts(name, *split_fused(name));
  fail("", fmt::format("no {}", tensor_label(name)));
}

// A per-expert tensor of a fusion: present, a float dtype, and the shape expert 0's gate implies.
const Checkpoint::Entry& Checkpoint::expert_entry(const std::string& fused, const std::string& name,
                                                  const Shape& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("", fmt::format("cannot fuse {}: missing {}", printable(fused), tensor_label(name)));
  if (it->second.shape != shape) {
    fail(shards_[it->second.shard]->file,
         fmt::format("cannot fuse {}: {} has shape {}, expected {}", printable(fused), tensor_label(name),
                     shape_str(it->second.shape), shape_str(shape)));
  }
  require_float(name, it->second);
  return it->second;
}

// experts.{e}.gate_proj/up_proj [I, H] -> gate_up_proj [E, 2I, H] (gate rows first, as
// transformers' conversion concatenates them); experts.{e}.down_proj [H, I] -> down_proj [E, H, I].
// Every expert's three tensors are checked whichever half is asked for, so both fail alike.
Weight Checkpoint::fuse_experts(const std::string& name, const FusedName& fused) const {
  auto expert_name = [&](int64_t e, std::string_view proj) {
    return fmt::format("{}{}.{}.weight", fused.experts, e, proj);
  };
  const Entry& gate0 = tensors_.at(expert_name(0, "gate_proj"));
  if (gate0.shape.size() != 2) {
    fail(shards_[gate0.shard]->file, fmt::format("cannot fuse {}: {} has shape {}, expected [intermediate, hidden]",
                                                 printable(name), tensor_label(expert_name(0, "gate_proj")),
                                                 shape_str(gate0.shape)));
  }
  const int64_t inter = gate0.shape[0];
  const int64_t hidden = gate0.shape[1];
  int64_t experts = 0;
  while (tensors_.contains(expert_name(experts, "gate_proj"))) ++experts;
  // An up/down past the last gate would be silently dropped: report the gate it lacks instead.
  for (std::string_view proj : {"up_proj", "down_proj"}) {
    if (tensors_.contains(expert_name(experts, proj))) {
      const std::string gate = expert_name(experts, "gate_proj");
      fail("", fmt::format("cannot fuse {}: missing {}", printable(name), tensor_label(gate)));
    }
  }
  std::vector<const Entry*> gates, ups, downs;
  for (int64_t e = 0; e < experts; ++e) {
    gates.push_back(&expert_entry(name, expert_name(e, "gate_proj"), {inter, hidden}));
    ups.push_back(&expert_entry(name, expert_name(e, "up_proj"), {inter, hidden}));
    downs.push_back(&expert_entry(name, expert_name(e, "down_proj"), {hidden, inter}));
  }
  Shape shape = fused.gate_up ? Shape{experts, 2 * inter, hidden} : Shape{experts, hidden, inter};
  std::optional<int64_t> count = checked_numel(shape);
  if (!count) fail("", fmt::format("cannot fuse {}: shape {} is too large", printable(name), shape_str(shape)));
  Weight weight{shape, std::vector<float>(static_cast<size_t>(*count))};
  const int64_t block = inter * hidden;  // one expert's gate, up or down
  for (int64_t e = 0; e < experts; ++e) {
    if (fused.gate_up) {
      read_into(*gates[e], weight.data.data() + 2 * e * block);
      read_into(*ups[e], weight.data.data() + (2 * e + 1) * block);
    } else {
      read_into(*downs[e], weight.data.data() + e * block);
    }
  }
  return weight;
}

void Checkpoint::require_float(const std::string& name, const Entry& entry) const {
  if (entry.dtype == "F32" || entry.dtype == "BF16" || entry.dtype == "F16") return;
  fail(shards_[entry.shard]->file,
       fmt::format("{}: dtype {} is not a float type this reader converts (F32, BF16, F16)", tensor_label(name),
                   entry.dtype));
}

// The shard's data section, mapping the file on first use. Mapping is lazy so that opening a
// checkpoint costs no address space for shards whose tensors are never read.
const std::byte* Checkpoint::shard_data(size_t index) const {
  std::lock_guard<std::mutex> lock(map_mutex_);
  Shard& shard = *shards_[index];
  if (shard.map == nullptr) {
    std::string error;
    shard.map = map_whole_file(dir_ / shard.file, shard.size, error);
    if (shard.map == nullptr) fail(shard.file, error);
  }
  return shard.map + shard.data_start;
}

// Widens the tensor's bytes into `out` (numel floats). Data need not be aligned, hence memcpy.
void Checkpoint::read_into(const Entry& entry, float* out) const {
  const auto count = static_cast<size_t>(*checked_numel(entry.shape));
  if (count == 0) return;
  const std::byte* src = shard_data(entry.shard) + entry.begin;
  if (entry.dtype == "F32") {
    std::memcpy(out, src, count * sizeof(float));  // bit-exact, NaN payloads included
    return;
  }
  const bool bf16 = entry.dtype == "BF16";
  for (size_t i = 0; i < count; ++i) {
    uint16_t bits = 0;
    std::memcpy(&bits, src + 2 * i, sizeof bits);
    out[i] = bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
}

}  // namespace parity::harness
