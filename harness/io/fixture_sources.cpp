#include "io/fixture_sources.h"

namespace parity::harness {

FixtureKey fixture_key(const std::string& key) {
  constexpr std::string_view kOutputs = "/outputs/";
  if (key.starts_with(kOutputs)) return {"outputs", key.substr(kOutputs.size())};
  return {"hooks", key};
}

std::vector<std::string> comparable_keys(const Fixture& fixture) {
  std::vector<std::string> keys = fixture.names("hooks");
  for (const std::string& name : fixture.names("outputs")) keys.push_back("/outputs/" + name);
  return keys;
}

Array to_array(const Tensor& t, const std::string& what) {
  PARITY_CHECK(is_floating(t.dtype), "[{}] is {}, expected a float tensor", what, dtype_name(t.dtype));
  return Array(t.shape, t.to_f64());
}

IndexArray to_index_array(const Tensor& t, const std::string& what) {
  PARITY_CHECK(!is_floating(t.dtype), "[{}] is {}, expected an integer tensor", what, dtype_name(t.dtype));
  return IndexArray{t.shape, t.ints()};
}

Weight FixtureWeights::get(const std::string& name) const {
  PARITY_CHECK(fixture_.has("weights", name),
               "[weights] {} is not in the fixture's /weights (dumped with --weights none or other layers? "
               "pass --weights CHECKPOINT_DIR)", name);
  Tensor t = fixture_.read("weights", name);
  auto* values = std::get_if<std::vector<float>>(&t.values);
  PARITY_CHECK(values != nullptr, "[weights] {} is {}; the reference reads float32, bfloat16 and float16 weights",
               name, dtype_name(t.dtype));
  return Weight{t.shape, std::move(*values)};
}

Tensor FixtureHookInputs::read(const std::string& key) const {
  for (const std::string_view group : {"inputs", "outputs"}) {
    const std::string prefix = fmt::format("/{}/", group);
    if (!key.starts_with(prefix)) continue;
    const std::string name = key.substr(prefix.size());
    PARITY_CHECK(fixture_.has(group, name), "[{}] {} is missing from the fixture", group, name);
    return fixture_.read(group, name);
  }
  PARITY_CHECK(fixture_.has("hooks", key), "[hooks] input {} is missing from the fixture", key);
  return fixture_.read("hooks", key);
}

Array FixtureHookInputs::floats(const std::string& key) const { return to_array(read(key), key); }

IndexArray FixtureHookInputs::ints(const std::string& key) const { return to_index_array(read(key), key); }

}  // namespace parity::harness
