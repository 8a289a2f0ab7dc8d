#include "io/fixture.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include <doctest/doctest.h>

namespace parity::harness {

namespace {

std::filesystem::path golden(const char* name) { return std::filesystem::path(PARITY_SOURCE_DIR) / "golden" / name; }

std::filesystem::path temp_file(const char* name) { return std::filesystem::temp_directory_path() / name; }

// The exception message of opening `path` (empty when it opens).
std::string open_error(const std::filesystem::path& path) {
  try {
    Fixture fixture(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Adds /hooks/<name> to an HDF5 file: `count` values at `data` (in the file type's own layout;
// count 0 makes a rank-0 scalar of one value), with a `dtype` attribute when `dtype_attr` is given.
void add_dataset(const std::filesystem::path& file, const char* name, hid_t file_type, const void* data,
                 hsize_t count, const char* dtype_attr) {
  H5Handle f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
  H5Handle space(count == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr), H5Sclose);
  std::string path = std::string("/hooks/") + name;
  H5Handle dataset(H5Dcreate2(f.get(), path.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  REQUIRE(H5Dwrite(dataset.get(), file_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  if (dtype_attr == nullptr) return;
  H5Handle str(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(str.get(), std::strlen(dtype_attr));
  H5Handle scalar(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(dataset.get(), "dtype", str.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  REQUIRE(H5Awrite(attr.get(), str.get(), dtype_attr) >= 0);
}

// IEEE binary16 as h5py creates it (h5t.pyx): fields of a float32 narrowed to 16 bits.
H5Handle ieee_f16() {
  H5Handle type(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  H5Tset_fields(type.get(), 15, 10, 5, 0, 10);
  H5Tset_size(type.get(), 2);
  H5Tset_ebias(type.get(), 15);
  return type;
}

size_t index_of(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

}  // namespace

TEST_CASE("fixture: reads meta, config, inputs and outputs of a golden OLMoE fixture") {
  Fixture fixture(golden("olmoe_base.h5"));
  CHECK(fixture.meta_string("model_type") == "olmoe");
  CHECK(fixture.meta_string("dtype") == "float32");
  CHECK(std::get<int64_t>(fixture.meta().at("schema_version")) == Fixture::kSchemaVersion);
  CHECK(fixture.config().at("num_experts").get<int>() == 8);
  CHECK(fixture.config().at("norm_topk_prob").get<bool>() == false);

  Tensor ids = fixture.read("inputs", "input_ids");
  CHECK(ids.dtype == DType::I64);
  REQUIRE(ids.shape.size() == 2);
  int64_t vocab = fixture.config().at("vocab_size").get<int64_t>();
  CHECK(std::all_of(ids.ints().begin(), ids.ints().end(), [&](int64_t id) { return id >= 0 && id < vocab; }));

  Tensor logits = fixture.read("outputs", "logits");
  CHECK(logits.shape == Shape{ids.shape[0], ids.shape[1], vocab});
  Tensor logprobs = fixture.read("outputs", "logprobs");
  CHECK(logprobs.shape == Shape{ids.shape[0], ids.shape[1] - 1});
  for (double lp : logprobs.to_f64()) CHECK(lp < 0.0);
}

TEST_CASE("fixture: hooks are listed in forward order") {
  Fixture fixture(golden("olmoe_base.h5"));
  const auto& hooks = fixture.names("hooks");
  REQUIRE(!hooks.empty());
  size_t attn_in = index_of(hooks, "model.layers.0.self_attn@in");
  size_t attn_out = index_of(hooks, "model.layers.0.self_attn");
  size_t router = index_of(hooks, "model.layers.0.mlp.gate");
  size_t layer1 = index_of(hooks, "model.layers.1.input_layernorm");
  size_t head = index_of(hooks, "lm_head");
  CHECK(head < hooks.size());
  CHECK(attn_in < attn_out);
  CHECK(attn_out < router);
  CHECK(router < layer1);
  CHECK(layer1 < head);
}

TEST_CASE("fixture: tied weights are a soft link that reads the same values") {
  Fixture fixture(golden("gemma4_full.h5"));
  DatasetInfo head = fixture.info("weights", "lm_head.weight");
  CHECK(head.link_target == "/weights/model.embed_tokens.weight");
  CHECK(fixture.read("weights", "lm_head.weight").to_f64() ==
        fixture.read("weights", "model.embed_tokens.weight").to_f64());
  // layer_scalar is a persistent buffer, randomised like every parameter.
  Tensor scalar = fixture.read("weights", "model.layers.0.layer_scalar");
  CHECK(scalar.shape == Shape{1});
  CHECK(scalar.to_f64()[0] != 1.0);
}

TEST_CASE("fixture: bf16 tensors decode exactly to the fp32 fixture's weights rounded to bf16") {
  // Both fixtures come from one seed; weights are randomised in fp32, then cast (randomize.py).
  Fixture fp32(golden("olmoe_base.h5"));
  Fixture bf16(golden("olmoe_base_bf16.h5"));
  CHECK(bf16.meta_string("dtype") == "bfloat16");
  const std::string name = "model.layers.1.self_attn.q_proj.weight";
  Tensor reference = fp32.read("weights", name);
  Tensor rounded = bf16.read("weights", name);
  CHECK(rounded.dtype == DType::BF16);
  REQUIRE(rounded.shape == reference.shape);
  std::vector<double> expected = reference.to_f64();
  std::vector<double> got = rounded.to_f64();
  size_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i)
    mismatches += got[i] != bf16_to_f32(f32_to_bf16(static_cast<float>(expected[i])));
  CHECK(mismatches == 0);
  CHECK(bf16.read("outputs", "logits").dtype == DType::BF16);
}

TEST_CASE("fixture: integer hooks keep their dtype (router top-k indices)") {
  Fixture fixture(golden("gemma4_full.h5"));
  Tensor index = fixture.read("hooks", "model.layers.0.router@top_k_index");
  CHECK(index.dtype == DType::I64);
  int64_t experts = fixture.config().at("num_experts").get<int64_t>();
  CHECK(index.shape.back() == fixture.config().at("top_k_experts").get<int64_t>());
  for (int64_t e : index.ints()) CHECK((e >= 0 && e < experts));
}

TEST_CASE("fixture: reads f16, f64, int32, bool and rank-0 datasets, with and without dtype attributes") {
  auto path = temp_file("parity_dtypes.h5");
  std::filesystem::copy_file(golden("olmoe_base.h5"), path, std::filesystem::copy_options::overwrite_existing);
  const uint16_t half_bits[] = {0x3c00, 0xc000, 0x0001, 0x7c00};  // 1, -2, 2^-24, +inf
  const double doubles[] = {0.1, -1e300, 3.0};
  const int32_t int32s[] = {-7, 0, 2147483647};
  const uint8_t bools[] = {1, 0, 1};
  add_dataset(path, "half", ieee_f16().get(), half_bits, 4, "float16");
  add_dataset(path, "half_no_attr", ieee_f16().get(), half_bits, 4, nullptr);
  add_dataset(path, "double", H5T_IEEE_F64LE, doubles, 3, "float64");
  add_dataset(path, "int32", H5T_STD_I32LE, int32s, 3, nullptr);
  add_dataset(path, "mask", H5T_STD_U8LE, bools, 3, "bool");
  const float quarter = 0.25f;
  add_dataset(path, "scalar", H5T_IEEE_F32LE, &quarter, 0, "float32");
  Fixture fixture(path);
  for (const char* name : {"half", "half_no_attr"}) {
    Tensor half = fixture.read("hooks", name);
    CHECK(half.dtype == DType::F16);
    std::vector<double> values = half.to_f64();
    CHECK(values[0] == 1.0);
    CHECK(values[1] == -2.0);
    CHECK(values[2] == std::ldexp(1.0, -24));
    CHECK(std::isinf(values[3]));
  }
  Tensor dbl = fixture.read("hooks", "double");
  CHECK(dbl.dtype == DType::F64);
  CHECK(dbl.to_f64() == std::vector<double>{0.1, -1e300, 3.0});  // no narrowing through float
  Tensor i32 = fixture.read("hooks", "int32");
  CHECK(i32.dtype == DType::I32);
  CHECK(i32.ints() == std::vector<int64_t>{-7, 0, 2147483647});
  Tensor scalar = fixture.read("hooks", "scalar");
  CHECK(scalar.shape.empty());
  CHECK(scalar.to_f64() == std::vector<double>{0.25});
  Tensor mask = fixture.read("hooks", "mask");
  CHECK(mask.dtype == DType::Bool);
  CHECK(mask.ints() == std::vector<int64_t>{1, 0, 1});
  std::filesystem::remove(path);
}

TEST_CASE("fixture: bad files are InputErrors naming the file") {
  SUBCASE("missing file") {
    std::string error = open_error("/nonexistent/x.h5");
    CHECK(error.find("/nonexistent/x.h5") != std::string::npos);
    CHECK(error.find("no such file") != std::string::npos);
  }
  SUBCASE("not HDF5") {
    auto path = temp_file("parity_not_hdf5.h5");
    std::ofstream(path) << "just text, no HDF5 signature\n";
    CHECK(open_error(path).find("not an HDF5 file") != std::string::npos);
    std::filesystem::remove(path);
  }
  SUBCASE("truncated") {
    auto path = temp_file("parity_truncated.h5");
    std::filesystem::copy_file(golden("olmoe_base.h5"), path, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    std::string error = open_error(path);
    CHECK(error.find(path.string()) != std::string::npos);
    CHECK(error.find("truncated") != std::string::npos);
    std::filesystem::remove(path);
  }
  SUBCASE("unknown group and dataset") {
    Fixture fixture(golden("olmoe_base.h5"));
    CHECK_THROWS_AS(fixture.names("activations"), InputError);
    CHECK_THROWS_WITH_AS(fixture.read("hooks", "model.layers.9.mlp"),
                         doctest::Contains("/hooks/model.layers.9.mlp: missing dataset"), InputError);
  }
}

}  // namespace parity::harness
