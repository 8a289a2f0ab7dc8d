#include "io/checkpoint.h"

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <utility>

#include <doctest/doctest.h>

namespace parity::harness {

namespace {

using nlohmann::json;

// A fresh empty folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir()
      : dir_(std::filesystem::temp_directory_path() / fmt::format("parity_checkpoint_{}_{}", ::getpid(), next_++)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path operator/(std::string_view name) const { return dir_ / name; }

 private:
  static inline int next_ = 0;
  std::filesystem::path dir_;
};

struct RawTensor {
  std::string name;
  std::string dtype;
  Shape shape;
  std::string bytes;  // little-endian element bytes, exactly as stored
};

std::string f32_bytes(const std::vector<float>& values) {
  std::string out(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string u16_bytes(const std::vector<uint16_t>& values) {
  std::string out(values.size() * sizeof(uint16_t), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string length_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// The header JSON and data section of a safetensors file holding `tensors` back to back, so a
// test can corrupt the header before writing it.
std::pair<json, std::string> layout(const std::vector<RawTensor>& tensors) {
  json header = json::object();
  std::string data;
  for (const RawTensor& t : tensors) {
    const json offsets = {data.size(), data.size() + t.bytes.size()};
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", offsets}};
    data += t.bytes;
  }
  return {header, data};
}

void write_raw(const std::filesystem::path& path, const std::string& header, const std::string& data) {
  write_file(path, length_prefix(header.size()) + header + data);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<RawTensor>& tensors) {
  auto [header, data] = layout(tensors);
  write_raw(path, header.dump(), data);
}

RawTensor f32_tensor(std::string name, Shape shape, const std::vector<float>& values) {
  return {std::move(name), "F32", std::move(shape), f32_bytes(values)};
}

// A single-file checkpoint holding one tensor whose header entry `corrupt` edits.
template <typename Edit>
void write_corrupt_entry(const TempDir& tmp, Edit corrupt) {
  auto [header, data] = layout({f32_tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6})});
  corrupt(header["w"]);
  write_raw(tmp / "model.safetensors", header.dump(), data);
}

// Writes each shard and an index.json mapping every tensor to the shard that holds it.
void write_sharded(const TempDir& tmp, const std::vector<std::pair<std::string, std::vector<RawTensor>>>& shards) {
  json weight_map = json::object();
  for (const auto& [file, tensors] : shards) {
    write_safetensors(tmp / file, tensors);
    for (const RawTensor& t : tensors) weight_map[t.name] = file;
  }
  const json index = {{"metadata", json::object()}, {"weight_map", weight_map}};
  write_file(tmp / "model.safetensors.index.json", index.dump());
}

// A value that encodes where it came from: 1000 * expert + 100 * proj + 10 * row + column.
float expert_value(int64_t e, int proj, int64_t row, int64_t col) {
  return static_cast<float>(1000 * e + 100 * proj + 10 * row + col);
}

// Hub-layout experts of one MoE block: experts.{e}.{gate,up}_proj.weight [inter, hidden] (proj 1,
// 2) and experts.{e}.down_proj.weight [hidden, inter] (proj 3), filled with expert_value.
std::vector<RawTensor> expert_tensors(const std::string& experts, int64_t first, int64_t last, int64_t inter,
                                      int64_t hidden) {
  auto matrix = [](int64_t e, int proj, int64_t rows, int64_t cols) {
    std::vector<float> out;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) out.push_back(expert_value(e, proj, r, c));
    }
    return out;
  };
  std::vector<RawTensor> out;
  for (int64_t e = first; e < last; ++e) {
    std::string prefix = fmt::format("{}{}.", experts, e);
    out.push_back(f32_tensor(prefix + "gate_proj.weight", {inter, hidden}, matrix(e, 1, inter, hidden)));
    out.push_back(f32_tensor(prefix + "up_proj.weight", {inter, hidden}, matrix(e, 2, inter, hidden)));
    out.push_back(f32_tensor(prefix + "down_proj.weight", {hidden, inter}, matrix(e, 3, hidden, inter)));
  }
  return out;
}

// The tensors `all` without the one named `name`.
std::vector<RawTensor> without(std::vector<RawTensor> all, const std::string& name) {
  std::erase_if(all, [&](const RawTensor& t) { return t.name == name; });
  return all;
}

bool same_bits(float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); }

}  // namespace

TEST_CASE("checkpoint: reads F32 tensors, their sorted names and config.json from a single file") {
  TempDir tmp;
  write_safetensors(tmp / "model.safetensors", {f32_tensor("model.norm.weight", {3}, {1.5f, -2.0f, 0.25f}),
                                                f32_tensor("lm_head.weight", {2, 2}, {1e-30f, 7.0f, -0.0f, 3.0e38f}),
                                                f32_tensor("empty", {0, 4}, {}), f32_tensor("scalar", {}, {42.0f})});
  write_file(tmp / "config.json", R"({"model_type": "olmoe", "num_experts": 8})");
  Checkpoint ckpt(tmp.dir());

  CHECK(ckpt.names() == std::vector<std::string>{"empty", "lm_head.weight", "model.norm.weight", "scalar"});
  REQUIRE(ckpt.has_config());
  CHECK(ckpt.config().at("num_experts").get<int>() == 8);
  CHECK(ckpt.has("lm_head.weight"));
  CHECK_FALSE(ckpt.has("lm_head.bias"));

  Weight head = ckpt.get("lm_head.weight");
  CHECK(head.shape == Shape{2, 2});
  REQUIRE(head.data.size() == 4);
  CHECK(same_bits(head.data[0], 1e-30f));
  CHECK(head.data[1] == 7.0f);
  CHECK(same_bits(head.data[2], -0.0f));
  CHECK(head.data[3] == 3.0e38f);
  CHECK(ckpt.get("model.norm.weight").data == std::vector<float>{1.5f, -2.0f, 0.25f});
  CHECK(ckpt.get("empty").shape == Shape{0, 4});
  CHECK(ckpt.get("empty").data.empty());
  CHECK(ckpt.get("scalar").data == std::vector<float>{42.0f});
  CHECK_THROWS_WITH_AS(ckpt.get("lm_head.bias"), doctest::Contains("no tensor lm_head.bias"), InputError);
}

TEST_CASE("checkpoint: widens BF16 and F16 to float exactly, at unaligned offsets") {
  TempDir tmp;
  // 1, -3, +inf, the smallest bf16 subnormal (2^-133), 1 + 2^-7.
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc040, 0x7f80, 0x0001, 0x3f81};
  // 1, -2, the smallest f16 subnormal (2^-24), the largest finite f16 (65504), 0x3555 = 1365 * 2^-12.
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555};
  // Five 2-byte values first put every later tensor at an odd multiple of 2 bytes.
  write_safetensors(tmp / "model.safetensors", {{"b", "BF16", {5}, u16_bytes(bf16)},
                                                {"h", "F16", {5}, u16_bytes(f16)},
                                                f32_tensor("f", {2}, {0.1f, -1e-45f})});
  Checkpoint ckpt(tmp.dir());

  const std::vector<float> b = ckpt.get("b").data;
  REQUIRE(b.size() == 5);
  CHECK(b[0] == 1.0f);
  CHECK(b[1] == -3.0f);
  CHECK(b[2] == std::numeric_limits<float>::infinity());
  CHECK(b[3] == std::ldexp(1.0f, -133));
  CHECK(b[4] == 1.0f + std::ldexp(1.0f, -7));

  const std::vector<float> h = ckpt.get("h").data;
  REQUIRE(h.size() == 5);
  CHECK(h[0] == 1.0f);
  CHECK(h[1] == -2.0f);
  CHECK(h[2] == std::ldexp(1.0f, -24));
  CHECK(h[3] == 65504.0f);
  CHECK(h[4] == std::ldexp(1365.0f, -12));

  const std::vector<float> f = ckpt.get("f").data;
  REQUIRE(f.size() == 2);
  CHECK(same_bits(f[0], 0.1f));
  CHECK(same_bits(f[1], -1e-45f));
}

TEST_CASE("checkpoint: reads tensors across the shards of model.safetensors.index.json") {
  TempDir tmp;
  write_safetensors(tmp / "model-00001-of-00002.safetensors",
                    {f32_tensor("embed.weight", {2}, {1, 2}), f32_tensor("layers.0.w", {1}, {3})});
  write_safetensors(tmp / "model-00002-of-00002.safetensors",
                    {{"layers.1.w", "BF16", {2}, u16_bytes({0x4000, 0xbf80})}});
  write_file(tmp / "model.safetensors.index.json", R"({"metadata": {"total_size": 16}, "weight_map": {
      "embed.weight": "model-00001-of-00002.safetensors", "layers.0.w": "model-00001-of-00002.safetensors",
      "layers.1.w": "model-00002-of-00002.safetensors"}})");
  Checkpoint ckpt(tmp.dir());

  CHECK(ckpt.names() == std::vector<std::string>{"embed.weight", "layers.0.w", "layers.1.w"});
  CHECK(ckpt.get("embed.weight").data == std::vector<float>{1, 2});
  CHECK(ckpt.get("layers.0.w").data == std::vector<float>{3});
  CHECK(ckpt.get("layers.1.w").data == std::vector<float>{2, -1});
  CHECK_FALSE(ckpt.has_config());
  CHECK_THROWS_WITH_AS(ckpt.config(), doctest::Contains("no config.json"), InputError);
}


TEST_CASE("checkpoint: fuses per-expert weights into gate_up_proj [E, 2I, H] and down_proj [E, H, I]") {
  constexpr int64_t kExperts = 3, kInter = 2, kHidden = 3;
  const std::string experts = "model.layers.0.mlp.experts.";
  TempDir tmp;
  // Experts 0-1 in one shard and expert 2 in the next, as a large checkpoint splits them.
  write_sharded(tmp, {{"a.safetensors", expert_tensors(experts, 0, 2, kInter, kHidden)},
                      {"b.safetensors", expert_tensors(experts, 2, kExperts, kInter, kHidden)}});
  Checkpoint ckpt(tmp.dir());
  CHECK(ckpt.has(experts + "gate_up_proj"));
  CHECK(ckpt.has(experts + "down_proj"));
  CHECK(ckpt.names().size() == 9);  // fused names are answered, not listed

  Weight gate_up = ckpt.get(experts + "gate_up_proj");
  REQUIRE(gate_up.shape == Shape{kExperts, 2 * kInter, kHidden});
  auto at = [](const Weight& w, int64_t i, int64_t j, int64_t k) {
    return w.data[static_cast<size_t>((i * w.shape[1] + j) * w.shape[2] + k)];
  };
  // Spot checks: rows 0..I-1 of each expert are its gate, rows I..2I-1 its up.
  CHECK(gate_up.data[0] == expert_value(0, 1, 0, 0));
  CHECK(gate_up.data[3] == expert_value(0, 1, 1, 0));
  CHECK(gate_up.data[6] == expert_value(0, 2, 0, 0));
  CHECK(gate_up.data[12] == expert_value(1, 1, 0, 0));
  CHECK(gate_up.data.back() == expert_value(2, 2, 1, 2));
  for (int64_t e = 0; e < kExperts; ++e) {
    for (int64_t r = 0; r < 2 * kInter; ++r) {
      for (int64_t h = 0; h < kHidden; ++h) {
        const float want = r < kInter ? expert_value(e, 1, r, h) : expert_value(e, 2, r - kInter, h);
        CHECK(at(gate_up, e, r, h) == want);
      }
    }
  }

  Weight down = ckpt.get(experts + "down_proj");
  REQUIRE(down.shape == Shape{kExperts, kHidden, kInter});
  CHECK(down.data[1] == expert_value(0, 3, 0, 1));
  CHECK(down.data[6] == expert_value(1, 3, 0, 0));
  for (int64_t e = 0; e < kExperts; ++e) {
    for (int64_t h = 0; h < kHidden; ++h) {
      for (int64_t i = 0; i < kInter; ++i) CHECK(at(down, e, h, i) == expert_value(e, 3, h, i));
    }
  }
}

TEST_CASE("checkpoint: a stored fused name wins over fusion, and names without expert 0 are absent") {
  TempDir tmp;
  std::vector<RawTensor> tensors = expert_tensors("m.experts.", 0, 1, 1, 1);
  tensors.push_back(f32_tensor("m.experts.down_proj", {1}, {-5}));
  write_safetensors(tmp / "model.safetensors", tensors);
  Checkpoint ckpt(tmp.dir());
  CHECK(ckpt.get("m.experts.down_proj").data == std::vector<float>{-5});
  const std::vector<float> gate_then_up = {expert_value(0, 1, 0, 0), expert_value(0, 2, 0, 0)};
  CHECK(ckpt.get("m.experts.gate_up_proj").data == gate_then_up);
  CHECK_FALSE(ckpt.has("other.experts.gate_up_proj"));
  CHECK_FALSE(ckpt.has("m.experts.up_proj"));
  CHECK_FALSE(ckpt.has(".experts.gate_up_proj"));
  CHECK_THROWS_WITH_AS(ckpt.get("other.experts.gate_up_proj"),
                       doctest::Contains("no tensor other.experts.gate_up_proj"), InputError);
}

TEST_CASE("checkpoint: fusion errors name the missing or mis-shaped per-expert tensor") {
  const std::string experts = "layers.3.mlp.experts.";
  const std::vector<RawTensor> all = expert_tensors(experts, 0, 3, 2, 4);
  TempDir tmp;
  SUBCASE("a missing up_proj") {
    write_safetensors(tmp / "model.safetensors", without(all, experts + "1.up_proj.weight"));
    Checkpoint ckpt(tmp.dir());
    CHECK(ckpt.has(experts + "gate_up_proj"));
    CHECK_THROWS_WITH_AS(ckpt.get(experts + "gate_up_proj"),
                         doctest::Contains("cannot fuse layers.3.mlp.experts.gate_up_proj: missing tensor "
                                           "layers.3.mlp.experts.1.up_proj.weight"),
                         InputError);
  }
  SUBCASE("a missing down_proj fails the gate_up half too") {
    write_safetensors(tmp / "model.safetensors", without(all, experts + "2.down_proj.weight"));
    CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}.get(experts + "gate_up_proj"),
                         doctest::Contains("missing tensor layers.3.mlp.experts.2.down_proj.weight"), InputError);
  }
  SUBCASE("a gap in the gates leaves experts past it without a gate") {
    write_safetensors(tmp / "model.safetensors", without(all, experts + "1.gate_proj.weight"));
    CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}.get(experts + "down_proj"),
                         doctest::Contains("missing tensor layers.3.mlp.experts.1.gate_proj.weight"), InputError);
  }
  SUBCASE("an expert whose up_proj has another shape") {
    std::vector<RawTensor> tensors = without(all, experts + "2.up_proj.weight");
    tensors.push_back(f32_tensor(experts + "2.up_proj.weight", {4, 2}, std::vector<float>(8, 0.0f)));
    write_safetensors(tmp / "model.safetensors", tensors);
    CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}.get(experts + "down_proj"),
                         doctest::Contains("tensor layers.3.mlp.experts.2.up_proj.weight has shape [4, 2], "
                                           "expected [2, 4]"),
                         InputError);
  }
  SUBCASE("a down_proj stored as [I, H] instead of [H, I]") {
    std::vector<RawTensor> tensors = without(all, experts + "0.down_proj.weight");
    tensors.push_back(f32_tensor(experts + "0.down_proj.weight", {2, 4}, std::vector<float>(8, 0.0f)));
    write_safetensors(tmp / "model.safetensors", tensors);
    CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}.get(experts + "down_proj"),
                         doctest::Contains("tensor layers.3.mlp.experts.0.down_proj.weight has shape [2, 4], "
                                           "expected [4, 2]"),
                         InputError);
  }
}

TEST_CASE("checkpoint: get rejects dtypes other than F32, BF16 and F16, naming the tensor and dtype") {
  TempDir tmp;
  write_safetensors(tmp / "model.safetensors", {{"ids", "I64", {2}, std::string(16, '\0')},
                                                {"scale", "F8_E4M3", {3}, std::string(3, '\0')},
                                                {"double", "F64", {1}, std::string(8, '\0')}});
  Checkpoint ckpt(tmp.dir());
  CHECK(ckpt.has("ids"));
  CHECK_THROWS_WITH_AS(ckpt.get("ids"), doctest::Contains("model.safetensors: tensor ids: dtype I64 is not"),
                       InputError);
  CHECK_THROWS_WITH_AS(ckpt.get("scale"), doctest::Contains("tensor scale: dtype F8_E4M3 is not"), InputError);
  CHECK_THROWS_WITH_AS(ckpt.get("double"), doctest::Contains("tensor double: dtype F64 is not"), InputError);
}

TEST_CASE("checkpoint: rejects a missing folder, a folder without safetensors, and an ambiguous one") {
  TempDir tmp;
  CHECK_THROWS_WITH_AS(Checkpoint{tmp / "nope"}, doctest::Contains("nope: no such folder"), InputError);
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains("neither model.safetensors nor"), InputError);
  write_safetensors(tmp / "model.safetensors", {f32_tensor("w", {1}, {1})});
  write_file(tmp / "model.safetensors.index.json", R"({"weight_map": {"w": "model.safetensors"}})");
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains("holds both"), InputError);
}

TEST_CASE("checkpoint: rejects a corrupt safetensors header, naming the file") {
  TempDir tmp;
  const std::filesystem::path file = tmp / "model.safetensors";
  const std::string valid = R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})";
  std::string want;
  SUBCASE("shorter than the length prefix") {
    write_file(file, "abc");
    want = "model.safetensors: 3 bytes, too short";
  }
  SUBCASE("header length past the end of the file") {
    write_file(file, length_prefix(valid.size() + 5) + valid + "1234");
    want = "model.safetensors: header length 66 runs past the end of the 73-byte file";
  }
  SUBCASE("header length over 100 MB") {
    write_file(file, length_prefix(uint64_t{200} << 20) + valid + "1234");
    want = "model.safetensors: header length 209715200 exceeds";
  }
  SUBCASE("header not JSON") {
    write_raw(file, "{\"w\": {", "1234");
    want = "model.safetensors: header: not valid JSON";
  }
  SUBCASE("header not an object") {
    write_raw(file, "[1, 2]", "");
    want = "model.safetensors: header is not a JSON object";
  }
  SUBCASE("the same tensor twice in one header") {
    write_raw(file, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
              "1234");
    want = "model.safetensors: header: duplicate key w";
  }
  SUBCASE("__metadata__ not a map of strings") {
    write_raw(file, R"({"__metadata__": {"format": 1}})", "");
    want = "model.safetensors: header: __metadata__ is not a map of strings";
  }
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains(want.c_str()), InputError);
}

TEST_CASE("checkpoint: rejects malformed tensor entries, naming the file and the tensor") {
  TempDir tmp;
  std::string want;
  SUBCASE("missing dtype") {
    write_corrupt_entry(tmp, [](json& w) { w.erase("dtype"); });
    want = "tensor w: missing dtype";
  }
  SUBCASE("missing shape") {
    write_corrupt_entry(tmp, [](json& w) { w.erase("shape"); });
    want = "tensor w: missing shape";
  }
  SUBCASE("missing data_offsets") {
    write_corrupt_entry(tmp, [](json& w) { w.erase("data_offsets"); });
    want = "tensor w: missing data_offsets";
  }
  SUBCASE("entry not an object") {
    write_corrupt_entry(tmp, [](json& w) { w = "F32"; });
    want = "tensor w: entry is not an object";
  }
  SUBCASE("unknown dtype") {
    write_corrupt_entry(tmp, [](json& w) { w["dtype"] = "Q7"; });
    want = "tensor w: unknown safetensors dtype 'Q7'";
  }
  SUBCASE("negative dimension") {
    write_corrupt_entry(tmp, [](json& w) { w["shape"] = json::array({-2, -3}); });
    want = "tensor w: negative dimension -2";
  }
  SUBCASE("non-integer dimension") {
    write_corrupt_entry(tmp, [](json& w) { w["shape"] = json::array({2.5, 3}); });
    want = "tensor w: shape holds a non-integer dimension";
  }
  SUBCASE("overflowing shape") {
    write_corrupt_entry(tmp, [](json& w) { w["shape"] = json::array({int64_t{1} << 32, int64_t{1} << 32}); });
    want = "tensor w: shape [4294967296, 4294967296] is too large";
  }
  SUBCASE("offsets past the end of the file") {
    write_corrupt_entry(tmp, [](json& w) { w["data_offsets"] = json::array({0, 28}); });
    want = "tensor w: data_offsets [0, 28] run past the 24 data bytes";
  }
  SUBCASE("end before begin") {
    write_corrupt_entry(tmp, [](json& w) { w["data_offsets"] = json::array({8, 4}); });
    want = "tensor w: data_offsets [8, 4] end before they begin";
  }
  SUBCASE("negative offset") {
    write_corrupt_entry(tmp, [](json& w) { w["data_offsets"] = json::array({-4, 4}); });
    want = "tensor w: data_offsets is not two non-negative integers";
  }
  SUBCASE("byte length disagrees with the shape") {
    write_corrupt_entry(tmp, [](json& w) { w["shape"] = json::array({2, 2}); });
    want = "tensor w: holds 24 bytes, but F32 [2, 2] needs 16";
  }
  SUBCASE("byte length disagrees with the dtype") {
    write_corrupt_entry(tmp, [](json& w) { w["dtype"] = "BF16"; });
    want = "tensor w: holds 24 bytes, but BF16 [2, 3] needs 12";
  }
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains(("model.safetensors: " + want).c_str()), InputError);
}

TEST_CASE("checkpoint: rejects an index.json that disagrees with its shards") {
  TempDir tmp;
  const std::string index = "model.safetensors.index.json";
  write_safetensors(tmp / "a.safetensors", {f32_tensor("x", {1}, {1}), f32_tensor("y", {1}, {2})});
  write_safetensors(tmp / "b.safetensors", {f32_tensor("z", {1}, {3})});
  std::string want;
  SUBCASE("a shard that does not exist") {
    write_file(tmp / index, R"({"weight_map": {"x": "a.safetensors", "z": "c.safetensors"}})");
    want = "model.safetensors.index.json: weight_map: tensor z: names shard c.safetensors, which does not exist";
  }
  SUBCASE("a listed tensor absent from its shard") {
    write_file(tmp / index, R"({"weight_map": {"x": "a.safetensors", "w": "b.safetensors"}})");
    want = "b.safetensors: tensor w is listed in model.safetensors.index.json but absent";
  }
  SUBCASE("a listed tensor stored in another shard") {
    write_file(tmp / index, R"({"weight_map": {"x": "b.safetensors", "z": "a.safetensors"}})");
    want = "b.safetensors: tensor x is listed in model.safetensors.index.json for this shard "
           "but stored in a.safetensors";
  }
  SUBCASE("the same tensor in two shards") {
    write_safetensors(tmp / "b.safetensors", {f32_tensor("z", {1}, {3}), f32_tensor("x", {1}, {4})});
    write_file(tmp / index, R"({"weight_map": {"x": "a.safetensors", "z": "b.safetensors"}})");
    want = "b.safetensors: tensor x is also stored in a.safetensors";
  }
  SUBCASE("a tensor listed twice") {
    write_file(tmp / index, R"({"weight_map": {"x": "a.safetensors", "x": "b.safetensors"}})");
    want = "model.safetensors.index.json: duplicate key x";
  }
  SUBCASE("a shard outside the folder") {
    write_file(tmp / index, R"({"weight_map": {"x": "../a.safetensors"}})");
    want = "model.safetensors.index.json: weight_map: tensor x: shard '../a.safetensors' is not a file name";
  }
  SUBCASE("no weight_map") {
    write_file(tmp / index, R"({"metadata": {}})");
    want = "model.safetensors.index.json: no weight_map object";
  }
  SUBCASE("index not JSON") {
    write_file(tmp / index, R"({"weight_map": )");
    want = "model.safetensors.index.json: not valid JSON";
  }
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains(want.c_str()), InputError);
}

TEST_CASE("checkpoint: rejects a config.json that is not a JSON object") {
  TempDir tmp;
  write_safetensors(tmp / "model.safetensors", {f32_tensor("w", {1}, {1})});
  write_file(tmp / "config.json", "[1]");
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains("config.json: not a JSON object"), InputError);
  write_file(tmp / "config.json", "{\"a\": ");
  CHECK_THROWS_WITH_AS(Checkpoint{tmp.dir()}, doctest::Contains("config.json: not valid JSON"), InputError);
}

TEST_CASE("checkpoint: reads tensor bytes only at get, and fails closed when the file changed size") {
  TempDir tmp;
  const std::filesystem::path file = tmp / "model.safetensors";
  auto [header, data] = layout({f32_tensor("w", {2}, {1, 2})});
  write_raw(file, header.dump(), data);
  Checkpoint ckpt(file.parent_path());
  // Same size, new values: construction read only the header, so get sees the new bytes.
  write_raw(file, header.dump(), f32_bytes({7, 8}));
  CHECK(ckpt.get("w").data == std::vector<float>{7, 8});

  Checkpoint stale(file.parent_path());
  write_raw(file, header.dump(), f32_bytes({7}));
  CHECK_THROWS_WITH_AS(stale.get("w"), doctest::Contains("model.safetensors: size changed from"), InputError);
}

}  // namespace parity::harness
