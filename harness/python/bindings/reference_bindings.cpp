// parity.replay / parity.forward / parity.modules: any module of the C++ reference on numpy
// inputs and weights (references/models/model.h), outside a fixture.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <pybind11/stl.h>

#include "args.h"
#include "arrays.h"
#include "io/fixture.h"
#include "io/fixture_sources.h"
#include "json_bridge.h"
#include "models/model.h"

namespace parity::python {

namespace {

// Every argument is converted here, with the GIL held; the GIL is released only around the
// reference's own work (compute() below), which touches no Python object. Every tensor, the config
// and the module name are the caller's, so each mistake in them is an InputError naming it.

// Weights by HF name, converted before the GIL is released. float32 only: a float64 weight would
// be rounded, a bfloat16 one must be widened by the caller (tensor.float()).
class DictWeights final : public WeightSource {
 public:
  explicit DictWeights(const py::handle& weights) {
    if (!py::isinstance<py::dict>(weights))
      type_error("weights: expected a dict {{HF name: float32 array}} or a parity.Fixture, got {}", type_name(weights));
    for (const auto& [name, value] : py::reinterpret_borrow<py::dict>(weights)) {
      if (!py::isinstance<py::str>(name)) type_error("weights: keys are HF weight names (str), got {}", type_name(name));
      const std::string key = str_arg(name, "weights key");
      const std::string what = "weights[\"" + key + "\"]";
      const auto f = as_f32(value, what);
      weights_[key] = Weight{shape_of(f), std::vector<float>(f.data(), f.data() + f.size())};
    }
  }
  bool has(const std::string& name) const override { return weights_.count(name) > 0; }
  Weight get(const std::string& name) const override {
    auto it = weights_.find(name);
    if (it == weights_.end()) input_error("weights: no weight \"{}\" was given (the module needs it)", name);
    return it->second;
  }

 private:
  std::map<std::string, Weight> weights_;
};

// A Fixture's /weights as the caller's weights: one it lacks, or cannot give as floats, is the
// caller's mistake here (`parity check` reports the same as the module's failure).
class CallerFixtureWeights final : public WeightSource {
 public:
  explicit CallerFixtureWeights(const harness::Fixture& fixture) : fixture_(fixture), weights_(fixture) {}
  bool has(const std::string& name) const override { return weights_.has(name); }
  Weight get(const std::string& name) const override {
    if (!weights_.has(name))
      input_error("weights: the fixture {} has no weight \"{}\" (dumped with weights=\"none\" or other layers?)",
                  fixture_.path().string(), name);
    try {
      return weights_.get(name);
    } catch (const harness::InputError&) {
      throw;
    } catch (const Error& e) {
      input_error("weights: {}", e.what());
    }
  }

 private:
  const harness::Fixture& fixture_;
  harness::FixtureWeights weights_;
};

// HF's tensors by hook key or /inputs path: floats and integers by their numpy dtype.
class DictInputs final : public HookInputs {
 public:
  DictInputs(const py::handle& inputs, std::string module) : module_(std::move(module)) {
    if (!py::isinstance<py::dict>(inputs))
      type_error("inputs: expected a dict {{hook key: array}}, got {}", type_name(inputs));
    for (const auto& [name, value] : py::reinterpret_borrow<py::dict>(inputs)) {
      if (!py::isinstance<py::str>(name)) type_error("inputs: keys are hook keys (str), got {}", type_name(name));
      const std::string key = str_arg(name, "inputs key");
      const std::string what = "inputs[\"" + key + "\"]";
      const py::array a = as_numpy(value, what);
      const char kind = a.dtype().kind();
      if (kind == 'f') floats_[key] = to_array(a, what);
      else if (kind == 'i' || kind == 'u' || kind == 'b') ints_[key] = to_index_array(a, what, Bools::kAllow);
      else type_error("{}: expected a float or integer array, got {}", what, py::str(a.dtype()).cast<std::string>());
    }
  }
  Array floats(const std::string& key) const override { return find(floats_, ints_, key, "float", "an integer"); }
  IndexArray ints(const std::string& key) const override { return find(ints_, floats_, key, "integer", "a float"); }

 private:
  template <typename T, typename Other>
  T find(const std::map<std::string, T>& map, const std::map<std::string, Other>& other, const std::string& key,
         const char* kind, const char* other_kind) const {
    auto it = map.find(key);
    if (it != map.end()) return it->second;
    if (other.count(key))
      input_error("inputs[\"{}\"]: {} array, but {} reads it as {} input", key, other_kind, module_, kind);
    input_error("inputs: {} needs {} input \"{}\"", module_, kind, key);
  }
  std::string module_;
  std::map<std::string, Array> floats_;
  std::map<std::string, IndexArray> ints_;
};

// HF's output gradients by hook key (a fixture's /grad_hooks): float arrays; an absent key is a
// tensor no gradient reached.
class DictGrads final : public GradInputs {
 public:
  explicit DictGrads(const py::handle& grads) {
    if (!py::isinstance<py::dict>(grads)) type_error("grads: expected a dict {{hook key: array}}, got {}", type_name(grads));
    for (const auto& [name, value] : py::reinterpret_borrow<py::dict>(grads)) {
      if (!py::isinstance<py::str>(name)) type_error("grads: keys are hook keys (str), got {}", type_name(name));
      const std::string key = str_arg(name, "grads key");
      const std::string what = "grads[\"" + key + "\"]";
      const py::array a = as_numpy(value, what);
      if (a.dtype().kind() != 'f')
        type_error("{}: expected a float array, got {}", what, py::str(a.dtype()).cast<std::string>());
      grads_[key] = to_array(a, what);
    }
  }
  std::optional<Array> grad(const std::string& key) const override {
    auto it = grads_.find(key);
    return it == grads_.end() ? std::nullopt : std::optional<Array>(it->second);
  }

 private:
  std::map<std::string, Array> grads_;
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

// The HF config: a Fixture's, or the caller's dict (as JSON, the way the CLI reads config.json).
nlohmann::json config_of(const py::handle& config) {
  if (py::isinstance<harness::Fixture>(config)) return config.cast<const harness::Fixture&>().config();
  if (!py::isinstance<py::dict>(config))
    input_error("config: expected a dict (an HF config) or a parity.Fixture, got {}", type_name(config));
  return json_dict_arg(config, "config");
}

Numerics numerics_named(const py::handle& name) {
  const std::string precision = str_arg(name, "precision");
  const std::optional<Precision> p = precision_from_name(precision);
  if (!p) input_error("precision: expected \"f64\", \"f32\" or \"bf16\", got \"{}\"", precision);
  return Numerics(*p);
}

// modules() lists every module of every layer: a layer count no model has must not exhaust memory.
constexpr int64_t kMaxLayers = 4096;

// A config the reference accepts, and the dimensions it resolves to. The reference raises
// parity::Error on a bad config (a fixture's config is what is being checked); from Python the
// config is the caller's, so it is an InputError. Sizes the reference takes on trust (a negative
// hidden_size) are refused here: the reference would index with them.
struct ModelConfig {
  nlohmann::json hf;
  int64_t vocab_size = 0;
};

// Holds the config (already JSON) to what the reference accepts, plus the checks above; fills vocab_size.
void check_config(ModelConfig& c) {
  try {
    const nlohmann::ordered_json resolved = resolved_config(c.hf);
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads", "head_dim"}) {
      if (!resolved.contains(key) || !resolved.at(key).is_number_integer()) continue;
      const int64_t v = resolved.at(key).get<int64_t>();
      if (v <= 0) input_error("config: \"{}\" is {}; it must be positive", key, v);
    }
    if (const int64_t layers = resolved.value("num_hidden_layers", int64_t{0}); layers > kMaxLayers)
      input_error("config: \"num_hidden_layers\" is {}, more than any model has (at most {} here)", layers, kMaxLayers);
    c.vocab_size = resolved.at("vocab_size").get<int64_t>();
  } catch (const harness::InputError&) {
    throw;
  } catch (const Error& e) {
    input_error("config: {}", e.what());
  } catch (const nlohmann::json::exception& e) {
    input_error("config: {}", e.what());
  }
}

ModelConfig checked_config(const py::handle& config) {
  ModelConfig c{config_of(config)};
  check_config(c);
  return c;
}

std::unique_ptr<ReferenceModel> model_of(const ModelConfig& config, const WeightSource& weights, const Numerics& numerics) {
  try {
    return make_reference_model(config.hf, weights, numerics);
  } catch (const harness::InputError&) {
    throw;
  } catch (const Error& e) {
    input_error("config: {}", e.what());
  }
}

// The weights: a dict of float32 arrays, or a Fixture's /weights.
std::unique_ptr<WeightSource> weights_of(const py::handle& weights) {
  if (py::isinstance<harness::Fixture>(weights))
    return std::make_unique<CallerFixtureWeights>(weights.cast<const harness::Fixture&>());
  return std::make_unique<DictWeights>(weights);
}

// The reference's own work, without the GIL. Everything it reads was the caller's and was checked
// above as far as the bindings can; a reference check that still fails (a tensor whose shape does
// not fit the config, an expert index out of range) is the caller's too, named by `what`.
template <typename F>
void compute(const std::string& what, F&& work) {
  try {
    py::gil_scoped_release release;
    work();
  } catch (const harness::InputError&) {
    throw;
  } catch (const Error& e) {
    input_error("{}: {}", what, e.what());
  }
}

// An integer array of input_ids' shape whose every element passes `ok`; else an InputError naming
// the first that does not, its position and the rule.
template <typename Ok>
IndexArray ids_like(const py::handle& obj, const char* what, const Shape& shape, Bools bools, Ok ok, const char* rule) {
  IndexArray a = to_index_array(obj, what, bools);
  if (a.shape != shape) input_error("{} {} must be shaped like input_ids {}", what, shape_str(a.shape), shape_str(shape));
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!ok(a.data[i])) input_error("{}: {} at {}; {}", what, a.data[i], index_str(i, shape), rule);
  return a;
}

// input_ids [B, S] (ids inside the config's vocabulary), the mask (0/1, default all ones) and the
// positions (>= 0, default 0..S-1) of a chained run; the config is checked first.
ForwardInputs checked_forward_inputs(ModelConfig& c, const py::handle& input_ids, const py::handle& attention_mask,
                                     const py::handle& position_ids) {
  ForwardInputs in{to_index_array(input_ids, "input_ids"), {}, {}};
  check_config(c);  // before the token ids are held to its vocabulary
  const Shape shape = in.input_ids.shape;
  if (shape.size() != 2) input_error("input_ids must be [B, S], got {}", shape_str(shape));
  if (shape[0] < 1 || shape[1] < 2)
    input_error("input_ids {}: the forward needs a batch of at least 1 sequence of at least 2 tokens "
                "(logprobs score each next token)", shape_str(shape));
  for (int64_t i = 0; i < in.input_ids.numel(); ++i)
    if (in.input_ids.data[i] < 0 || in.input_ids.data[i] >= c.vocab_size)
      input_error("input_ids: token id {} at {} is outside the vocabulary 0..{}", in.input_ids.data[i],
                  index_str(i, shape), c.vocab_size - 1);
  in.attention_mask = attention_mask.is_none()
                          ? IndexArray{shape, std::vector<int64_t>(in.input_ids.numel(), 1)}
                          : ids_like(attention_mask, "attention_mask", shape, Bools::kAllow,
                                     [](int64_t v) { return v == 0 || v == 1; }, "a mask holds only 0 and 1 (or bools)");
  if (position_ids.is_none()) {
    in.position_ids = IndexArray{shape, std::vector<int64_t>(in.input_ids.numel())};
    for (int64_t i = 0; i < in.input_ids.numel(); ++i) in.position_ids.data[i] = i % shape[1];
  } else {
    in.position_ids = ids_like(position_ids, "position_ids", shape, Bools::kRefuse, [](int64_t v) { return v >= 0; },
                               "positions are >= 0");
  }
  return in;
}

// The loss of forward_backward: "logprob_sum" with its [B, S-1] weights, or "ce_mean" with [B, S] labels.
Loss loss_of(const py::handle& name, const py::handle& weights, const py::handle& labels, const Shape& ids) {
  const std::string kind = str_arg(name, "loss");
  Loss loss;
  if (kind == "logprob_sum") {
    if (weights.is_none()) input_error("loss logprob_sum needs loss_weights [B, S-1]");
    if (!labels.is_none()) input_error("labels belong to the ce_mean loss; logprob_sum takes loss_weights");
    const py::array a = as_numpy(weights, "loss_weights");
    if (a.dtype().kind() != 'f')
      type_error("loss_weights: expected a float array, got {}", py::str(a.dtype()).cast<std::string>());
    loss.weights = to_array(a, "loss_weights");
    if (loss.weights.shape != (Shape{ids[0], ids[1] - 1}))
      input_error("loss_weights {} must be [B, S-1] = [{}, {}]", shape_str(loss.weights.shape), ids[0], ids[1] - 1);
    for (int64_t i = 0; i < loss.weights.numel(); ++i)
      if (!std::isfinite(loss.weights.data[i])) input_error("loss_weights: {} at {}", loss.weights.data[i], index_str(i, loss.weights.shape));
  } else if (kind == "ce_mean") {
    if (labels.is_none()) input_error("loss ce_mean needs labels [B, S]");
    if (!weights.is_none()) input_error("loss_weights belong to the logprob_sum loss; ce_mean is HF's unweighted labels loss");
    loss.kind = Loss::Kind::kCeMean;
    loss.labels = ids_like(labels, "labels", ids, Bools::kRefuse, [](int64_t v) { return v >= 0 || v == -100; },
                           "a label is a token id or -100");
  } else {
    input_error("loss: expected \"logprob_sum\" or \"ce_mean\", got \"{}\"", kind);
  }
  return loss;
}

// Routes the routers named in a {router hook key: top-k index} dict as given (where the shape fits).
class DictRouting final : public RoutingPolicy {
 public:
  explicit DictRouting(const py::handle& routing) {
    if (!py::isinstance<py::dict>(routing))
      type_error("routing: expected a dict {{router hook key: top-k index}}, got {}", type_name(routing));
    for (const auto& [name, value] : py::reinterpret_borrow<py::dict>(routing)) {
      const std::string key = str_arg(name, "routing key");
      IndexArray index = to_index_array(value, "routing[\"" + key + "\"]");
      // A top-k choice names k distinct experts per token (HF's torch.topk never repeats one).
      if (index.shape.size() == 2)
        for (int64_t t = 0; t < index.shape[0]; ++t) {
          const auto row = index.data.begin() + t * index.shape[1];
          std::vector<int64_t> sorted(row, row + index.shape[1]);
          std::sort(sorted.begin(), sorted.end());
          if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            input_error("routing[\"{}\"]: token {} names an expert twice", key, t);
        }
      index_[key] = std::move(index);
    }
  }
  IndexArray resolve(const std::string& router, const IndexArray& own, const Array&) const override {
    auto it = index_.find(router);
    if (it == index_.end()) return own;
    PARITY_CHECK(it->second.shape == own.shape, "routing[\"{}\"] is {}, the router chooses {}", router,
                 shape_str(it->second.shape), shape_str(own.shape));
    used_.insert(router);
    return it->second;
  }
  // A routing entry no router read is the caller's mistake (a misspelt key), never ignored.
  void check_all_used() const {
    for (const auto& [router, index] : index_)
      if (!used_.count(router)) input_error("routing: \"{}\" is no router of this model", router);
  }

 private:
  std::map<std::string, IndexArray> index_;
  mutable std::set<std::string> used_;
};

}  // namespace

void bind_reference(py::module_& m) {
  m.def(
      "modules",
      [](const py::handle& config) {
        const ModelConfig c = checked_config(config);
        const DictWeights none{py::dict()};
        return model_of(c, none, Numerics())->modules();
      },
      py::arg("config"),
      "The steps the reference can replay for this HF config (dict or Fixture), in forward order.\n"
      "InputError when the reference cannot model the config.");
  m.def(
      "replay",
      [](const py::handle& config, const py::handle& module_name, const py::handle& inputs, const py::handle& weights,
         const py::handle& precision) {
        // Every argument converted (TypeErrors first), then checked against the config.
        ModelConfig c{config_of(config)};
        const std::string module = str_arg(module_name, "module");
        const Numerics numerics = numerics_named(precision);
        const std::unique_ptr<WeightSource> source = weights_of(weights);
        const DictInputs hf(inputs, module);
        check_config(c);
        const std::unique_ptr<ReferenceModel> model = model_of(c, *source, numerics);
        const std::vector<std::string> known = model->modules();
        if (std::find(known.begin(), known.end(), module) == known.end())
          input_error("module: \"{}\" is not a module of this {} config (parity.modules(config) lists them)", module,
                      c.hf.value("model_type", std::string("?")));
        CollectingSink sink;
        compute("replay " + module, [&] { model->replay(module, hf, sink); });
        return sink.to_dict();
      },
      py::arg("config"), py::arg("module"), py::arg("inputs"), py::arg("weights"), py::arg("precision") = "f32",
      "One module of the reference on your inputs, as `parity check --mode isolated` replays it: config (HF dict or\n"
      "Fixture), module (a name from modules(), e.g. \"model.layers.0.mlp\"), inputs {hook key: array} (the keys\n"
      "the module reads, e.g. \"model.layers.0.mlp@in\"), weights {HF name: float32 array} or a Fixture,\n"
      "precision \"f64\"/\"f32\"/\"bf16\" (HF's cast points). Returns {hook key: array} of everything it emits.\n"
      "InputError names a bad config, module, missing or mis-shaped input or weight.");
  m.def(
      "replay_backward",
      [](const py::handle& config, const py::handle& module_name, const py::handle& inputs, const py::handle& grads,
         const py::handle& weights) {
        ModelConfig c{config_of(config)};
        const std::string module = str_arg(module_name, "module");
        const std::unique_ptr<WeightSource> source = weights_of(weights);
        const DictInputs hf(inputs, module);
        const DictGrads hf_grads(grads);
        check_config(c);
        const std::unique_ptr<ReferenceModel> model = model_of(c, *source, Numerics(Precision::F64));
        const std::vector<std::string> known = model->modules();
        if (std::find(known.begin(), known.end(), module) == known.end())
          input_error("module: \"{}\" is not a module of this {} config (parity.modules(config) lists them)", module,
                      c.hf.value("model_type", std::string("?")));
        CollectingSink sink;
        compute("backward " + module, [&] { model->replay_backward(module, hf, hf_grads, sink); });
        return sink.to_dict();
      },
      py::arg("config"), py::arg("module"), py::arg("inputs"), py::arg("grads"), py::arg("weights"),
      "One module's backward at the exact math (f64), from HF's inputs (as replay reads them) and HF's\n"
      "gradients of its outputs {hook key: array} (a gradient fixture's /grad_hooks). Returns the module's\n"
      "own gradient of each float input under its hook key (\"<module>@in\") and this module's share of each\n"
      "parameter's gradient under \"/grads/<HF name>\". Every module but the rotary tables; InputError for those.");
  m.def(
      "forward",
      [](const py::handle& config, const py::handle& input_ids, const py::handle& weights,
         const py::handle& attention_mask, const py::handle& position_ids, const py::handle& precision) {
        ModelConfig c{config_of(config)};
        const Numerics numerics = numerics_named(precision);
        const std::unique_ptr<WeightSource> source = weights_of(weights);
        const ForwardInputs in = checked_forward_inputs(c, input_ids, attention_mask, position_ids);
        const std::unique_ptr<ReferenceModel> model = model_of(c, *source, numerics);
        CollectingSink sink;
        compute("forward", [&] { model->forward(in, sink, nullptr); });
        return sink.to_dict();
      },
      py::arg("config"), py::arg("input_ids"), py::arg("weights"), py::arg("attention_mask") = py::none(),
      py::arg("position_ids") = py::none(), py::arg("precision") = "f32",
      "The reference end to end from input_ids [B, S] (chained): {hook key: array} of every hook, with\n"
      "\"/outputs/logits\" and \"/outputs/logprobs\". attention_mask (0/1) default all ones, position_ids 0..S-1.\n"
      "InputError names a bad config, a token id outside the vocabulary, a bad mask or a missing weight.");
  m.def(
      "forward_backward",
      [](const py::handle& config, const py::handle& input_ids, const py::handle& weights, const py::handle& loss_name,
         const py::handle& loss_weights, const py::handle& labels, const py::handle& routing,
         const py::handle& attention_mask, const py::handle& position_ids) {
        ModelConfig c{config_of(config)};
        const std::unique_ptr<WeightSource> source = weights_of(weights);
        const ForwardInputs in = checked_forward_inputs(c, input_ids, attention_mask, position_ids);
        const Loss loss = loss_of(loss_name, loss_weights, labels, in.input_ids.shape);
        const DictRouting route(routing);
        const std::unique_ptr<ReferenceModel> model = model_of(c, *source, Numerics(Precision::F64));
        CollectingSink sink;
        compute("forward_backward", [&] { model->forward_backward(in, loss, sink, &route); });
        route.check_all_used();
        return sink.to_dict();
      },
      py::arg("config"), py::arg("input_ids"), py::arg("weights"), py::arg("loss"),
      py::arg("loss_weights") = py::none(), py::arg("labels") = py::none(), py::arg("routing") = py::dict(),
      py::arg("attention_mask") = py::none(), py::arg("position_ids") = py::none(),
      "The reference's chained forward and its backward from a loss, at the exact math (f64): loss\n"
      "\"logprob_sum\" (loss_weights [B, S-1]) or \"ce_mean\" (labels [B, S], -100 ignored). routing {router\n"
      "hook key: top-k index [T, K]} routes those routers as given (HF's own choice, at a near-tie).\n"
      "Returns \"/loss/value\", \"/grads/<HF name>\" of every parameter and the output gradients of the\n"
      "modules it passes by hook key. Both families.");
}

}  // namespace parity::python
