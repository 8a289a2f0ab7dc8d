// parity.replay / parity.forward / parity.modules: any module of the C++ reference on numpy
// inputs and weights (references/models/model.h), outside a fixture.
#include <map>

#include <pybind11/stl.h>

#include "arrays.h"
#include "io/fixture.h"
#include "io/fixture_sources.h"
#include "json_bridge.h"
#include "models/model.h"

namespace parity::python {

namespace {

// Weights by HF name, converted before the GIL is released. float32 only: a float64 weight would
// be rounded, a bfloat16 one must be widened by the caller (tensor.float()).
class DictWeights final : public WeightSource {
 public:
  explicit DictWeights(const py::dict& weights) {
    for (const auto& [name, value] : weights) {
      const std::string key = py::str(name);
      const py::array a = py::array::ensure(value);
      if (!a || a.dtype().kind() != 'f' || a.itemsize() != 4)
        throw py::type_error("weights[\"" + key + "\"]: expected float32 (widen bfloat16 with .float())");
      const auto f = py::array_t<float, py::array::c_style>::ensure(a);
      weights_[key] = Weight{shape_of(f), std::vector<float>(f.data(), f.data() + f.size())};
    }
  }
  bool has(const std::string& name) const override { return weights_.count(name) > 0; }
  Weight get(const std::string& name) const override {
    auto it = weights_.find(name);
    if (it == weights_.end()) throw Error("[weights] no weight \"" + name + "\" was given");
    return it->second;
  }

 private:
  std::map<std::string, Weight> weights_;
};

// HF's tensors by hook key or /inputs path: floats and integers by their numpy dtype.
class DictInputs final : public HookInputs {
 public:
  explicit DictInputs(const py::dict& inputs) {
    for (const auto& [name, value] : inputs) {
      const std::string key = py::str(name);
      const py::array a = py::array::ensure(value);
      if (a && a.dtype().kind() == 'f') floats_[key] = to_array(a, "inputs[\"" + key + "\"]");
      else ints_[key] = to_index_array(value, "inputs[\"" + key + "\"]");
    }
  }
  Array floats(const std::string& key) const override { return find(floats_, key, "float"); }
  IndexArray ints(const std::string& key) const override { return find(ints_, key, "integer"); }

 private:
  template <typename T>
  static T find(const std::map<std::string, T>& map, const std::string& key, const char* kind) {
    auto it = map.find(key);
    if (it == map.end()) throw Error("[inputs] the module needs " + std::string(kind) + " input \"" + key + "\"");
    return it->second;
  }
  std::map<std::string, Array> floats_;
  std::map<std::string, IndexArray> ints_;
};

// Every tensor the reference emits, by hook key (top-k: the index the reference chose).
class CollectingSink final : public HookSink {
 public:
  void emit(const std::string& key, const Array& value) override { floats[key] = value; }
  void emit_top_k(const std::string& key, const TopK& top_k) override { ints[key] = top_k.index; }
  std::map<std::string, Array> floats;
  std::map<std::string, IndexArray> ints;

  py::dict to_dict() {
    py::dict out;
    for (auto& [key, value] : floats) out[py::str(key)] = to_numpy(std::move(value));
    for (auto& [key, value] : ints) out[py::str(key)] = to_numpy(std::move(value));
    return out;
  }
};

nlohmann::json config_of(const py::handle& config) {
  if (py::isinstance<harness::Fixture>(config)) return config.cast<const harness::Fixture&>().config();
  return from_python(config);
}

Numerics numerics_named(const std::string& precision) {
  const std::optional<Precision> p = precision_from_name(precision);
  if (!p) throw py::value_error("precision must be \"f64\", \"f32\" or \"bf16\", got \"" + precision + "\"");
  return Numerics(*p);
}

// The weights: a dict of float32 arrays, or a Fixture's /weights.
std::unique_ptr<WeightSource> weights_of(const py::handle& weights, const harness::Fixture** fixture) {
  if (py::isinstance<harness::Fixture>(weights)) {
    *fixture = &weights.cast<const harness::Fixture&>();
    return std::make_unique<harness::FixtureWeights>(**fixture);
  }
  return std::make_unique<DictWeights>(weights.cast<py::dict>());
}

}  // namespace

void bind_reference(py::module_& m) {
  m.def(
      "modules",
      [](const py::handle& config) {
        const DictWeights none{py::dict()};
        return make_reference_model(config_of(config), none, Numerics())->modules();
      },
      py::arg("config"), "The steps the reference can replay for this HF config (dict or Fixture), in forward order.");
  m.def(
      "replay",
      [](const py::handle& config, const std::string& module, const py::dict& inputs, const py::handle& weights,
         const std::string& precision) {
        const harness::Fixture* fixture = nullptr;
        const std::unique_ptr<WeightSource> source = weights_of(weights, &fixture);
        const DictInputs hf(inputs);
        CollectingSink sink;
        {
          py::gil_scoped_release release;
          make_reference_model(config_of(config), *source, numerics_named(precision))->replay(module, hf, sink);
        }
        return sink.to_dict();
      },
      py::arg("config"), py::arg("module"), py::arg("inputs"), py::arg("weights"), py::arg("precision") = "f32",
      "One module of the reference on your inputs, as `parity check --mode isolated` replays it: config (HF dict or\n"
      "Fixture), module (a name from modules(), e.g. \"model.layers.0.mlp\"), inputs {hook key: array} (the keys\n"
      "the module reads, e.g. \"model.layers.0.mlp@in\"), weights {HF name: float32 array} or a Fixture,\n"
      "precision \"f64\"/\"f32\"/\"bf16\" (HF's cast points). Returns {hook key: array} of everything it emits.");
  m.def(
      "forward",
      [](const py::handle& config, const py::handle& input_ids, const py::handle& weights,
         const py::handle& attention_mask, const py::handle& position_ids, const std::string& precision) {
        const harness::Fixture* fixture = nullptr;
        const std::unique_ptr<WeightSource> source = weights_of(weights, &fixture);
        ForwardInputs in{to_index_array(input_ids, "input_ids"), {}, {}};
        const Shape shape = in.input_ids.shape;
        if (shape.size() != 2) throw py::value_error("input_ids must be [B, S], got " + shape_str(shape));
        in.attention_mask = attention_mask.is_none() ? IndexArray{shape, std::vector<int64_t>(in.input_ids.numel(), 1)}
                                                     : to_index_array(attention_mask, "attention_mask");
        if (position_ids.is_none()) {
          in.position_ids = IndexArray{shape, std::vector<int64_t>(in.input_ids.numel())};
          for (int64_t i = 0; i < in.input_ids.numel(); ++i) in.position_ids.data[i] = i % shape[1];
        } else {
          in.position_ids = to_index_array(position_ids, "position_ids");
        }
        if (in.attention_mask.shape != shape || in.position_ids.shape != shape)
          throw py::value_error("attention_mask and position_ids must be shaped like input_ids " + shape_str(shape));
        CollectingSink sink;
        {
          py::gil_scoped_release release;
          make_reference_model(config_of(config), *source, numerics_named(precision))->forward(in, sink, nullptr);
        }
        return sink.to_dict();
      },
      py::arg("config"), py::arg("input_ids"), py::arg("weights"), py::arg("attention_mask") = py::none(),
      py::arg("position_ids") = py::none(), py::arg("precision") = "f32",
      "The reference end to end from input_ids [B, S] (chained): {hook key: array} of every hook, with\n"
      "\"/outputs/logits\" and \"/outputs/logprobs\". attention_mask default all ones, position_ids 0..S-1.");
}

}  // namespace parity::python
