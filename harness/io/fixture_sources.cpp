#include "io/fixture_sources.h"

#include <algorithm>

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

namespace {

IndexArray model_input(const Fixture& fixture, const std::string& name) {
  const std::string where = fmt::format("[{}] /inputs/{}", fixture.path().string(), name);
  if (!fixture.has("inputs", name)) throw InputError(where + " is missing");
  const Tensor t = fixture.read("inputs", name);
  if (is_floating(t.dtype)) throw InputError(fmt::format("{} is {}, expected an integer tensor", where, dtype_name(t.dtype)));
  if (t.shape.size() != 2 || t.shape[0] < 1 || t.shape[1] < 1)
    throw InputError(fmt::format("{} has shape {}, expected [batch, seq_len] with both >= 1", where, shape_str(t.shape)));
  return IndexArray{t.shape, t.ints()};
}

}  // namespace

ForwardInputs forward_inputs(const Fixture& fixture) {
  ForwardInputs in{model_input(fixture, "input_ids"), model_input(fixture, "attention_mask"),
                   model_input(fixture, "position_ids")};
  const Shape& shape = in.input_ids.shape;
  const std::string file = fixture.path().string();
  for (const auto& [name, t] : {std::pair<const char*, const IndexArray*>{"attention_mask", &in.attention_mask},
                                {"position_ids", &in.position_ids}})
    if (t->shape != shape)
      throw InputError(fmt::format("[{}] /inputs/{} has shape {}, /inputs/input_ids {}", file, name, shape_str(t->shape),
                                   shape_str(shape)));
  const int64_t seq = shape[1];
  for (size_t i = 0; i < in.input_ids.data.size(); ++i) {
    const auto at = [&] { return fmt::format("[{}, {}]", static_cast<int64_t>(i) / seq, static_cast<int64_t>(i) % seq); };
    if (in.input_ids.data[i] < 0)
      throw InputError(fmt::format("[{}] /inputs/input_ids{} = {}: token ids are >= 0", file, at(), in.input_ids.data[i]));
    if (in.attention_mask.data[i] != 0 && in.attention_mask.data[i] != 1)
      throw InputError(fmt::format("[{}] /inputs/attention_mask{} = {}: a mask holds only 0 and 1", file, at(),
                                   in.attention_mask.data[i]));
    if (in.position_ids.data[i] < 0)
      throw InputError(fmt::format("[{}] /inputs/position_ids{} = {}: positions are >= 0", file, at(),
                                   in.position_ids.data[i]));
  }
  for (int64_t b = 0; b < shape[0]; ++b) {
    const auto row = in.attention_mask.data.begin() + b * seq;
    if (std::all_of(row, row + seq, [](int64_t m) { return m == 0; }))
      throw InputError(fmt::format("[{}] /inputs/attention_mask row {} is all zeros: sequence {} has no token to "
                                   "attend to, so its outputs are undefined", file, b, b));
  }
  return in;
}

std::unique_ptr<ReferenceModel> reference_model_of(const Fixture& fixture, const WeightSource& weights,
                                                   Precision precision, const Variants& variants) {
  try {
    return make_reference_model(fixture.config(), weights, Numerics(precision), /*keep_weights=*/false, variants);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(fmt::format("fixture {}: /meta/config: {}", fixture.path().string(), e.what()));
  }
}

Weight FixtureWeights::get(const std::string& name) const {
  PARITY_CHECK(fixture_.has("weights", name),
               "[weights] {} is not in the fixture's /weights (dumped with --weights none or other layers? "
               "pass --weights CHECKPOINT_DIR)", name);
  Tensor t = fixture_.read("weights", name);
  // A float64 run of a float32 model (model.double(): HF's math without round-off, the evidence
  // for a backward's exactness) holds float32 values in float64; anything else float cannot hold.
  if (auto* wide = std::get_if<std::vector<double>>(&t.values)) {
    std::vector<float> narrow(wide->size());
    for (size_t i = 0; i < wide->size(); ++i) {
      narrow[i] = static_cast<float>((*wide)[i]);
      PARITY_CHECK(static_cast<double>(narrow[i]) == (*wide)[i],
                   "[weights] {} is float64 with values float32 cannot hold (element {}); the reference reads float32 "
                   "values", name, i);
    }
    return Weight{t.shape, std::move(narrow)};
  }
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
