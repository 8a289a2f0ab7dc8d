#include "run/grad_check.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "io/fixture_sources.h"
#include "models/model.h"
#include "run/grad_sink.h"
#include "run/noise_floor.h"

namespace parity::harness {

namespace {

// HF's gradient of each hooked tensor, as a module's backward reads it (/grad_hooks).
class FixtureGrads final : public GradInputs {
 public:
  explicit FixtureGrads(const Fixture& fixture) : fixture_(fixture) {}
  std::optional<Array> grad(const std::string& key) const override {
    if (!fixture_.has("grad_hooks", key)) return std::nullopt;
    return to_array(fixture_.read("grad_hooks", key), "gradient of " + key);
  }

 private:
  const Fixture& fixture_;
};

// Whether the module's backward has something to start from: HF's gradient of one of its outputs.
bool has_output_gradient(const Fixture& fixture, const std::string& module) {
  for (const std::string& key : fixture.names("grad_hooks"))
    if (!is_input_key(key) && parse_hook_key(key).module == module) return true;
  return false;
}

// Under --hooks, a module runs when the glob selects one of its gradients.
bool selected(const Fixture& fixture, const std::string& module, const std::string& glob) {
  if (glob.empty()) return true;
  for (const std::string& name : gradient_names(fixture))
    if ((parse_hook_key(name).module == module || name.starts_with(module + ".")) && glob_match(glob, name)) return true;
  return false;
}

// The second opinion replays each module's backward right before the reference does (its composite
// modules recompute their forward with float sums): the isolated floor, zero for a leaf module.
void run_isolated(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                  GradFloorSink& floor, GradSink& sink, const std::string& glob) {
  const FixtureHookInputs inputs(fixture);
  const FixtureGrads grads(fixture);
  if (floor_model) sink.set_floor(&floor);
  for (const std::string& module : model.modules()) {
    // Replay units of one input ("x@in") are forward-only; a module nothing was differentiated
    // through (the rotary tables) has no backward to check.
    if (module.find('@') != std::string::npos || !has_output_gradient(fixture, module) ||
        !selected(fixture, module, glob))
      continue;
    floor.set_module(module);
    if (floor_model) {
      try {
        floor_model->replay_backward(module, inputs, grads, floor);
        floor.commit();  // a module that failed half-way leaves no partial parameter share
      } catch (const Error&) {  // no floor for this module: only a floor_ratio limit fails, naming it
      }
    }
    sink.set_module(module);
    try {
      model.replay_backward(module, inputs, grads, sink);
    } catch (const InputError&) {
      throw;
    } catch (const Error& e) {
      sink.fail_module(module, fmt::format("cannot run the backward: {}", e.what()));
    }
  }
}

// The second opinion (run/noise_floor.h: float sums at the run's cast points) runs the same forward
// and backward first: how far its gradients lie from the reference's is how far the forward's
// round-off alone moves them on these inputs (the chained floor).
void run_chained(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                 GradFloorSink& floor, GradSink& sink, CheckReport& report) {
  // Routed as HF routed: the forward's own chained check gates the routing; a near-tie broken the
  // other way here would move a token's experts and every gradient after it.
  const RouteAs routing(fixture);
  const ForwardInputs inputs = forward_inputs(fixture);
  const Loss loss = fixture_loss(fixture, inputs);
  if (floor_model) {
    try {
      floor_model->forward_backward(inputs, loss, floor, &routing);
      floor.commit();
      sink.set_floor(&floor);
    } catch (const Error&) {  // no floor: only a floor_ratio limit fails, naming it
    }
  }
  try {
    model.forward_backward(inputs, loss, sink, &routing);
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    report.problems.push_back(fmt::format("the chained backward stopped: {}", e.what()));
    sink.set_aborted();
  }
}

}  // namespace

// A malformed /loss is bad input (exit 2), not a failure of the reference.
Loss fixture_loss(const Fixture& fixture, const ForwardInputs& inputs) {
  const std::string where = fixture.path().string();
  auto require = [&](const std::string& name, bool floating) {
    if (!fixture.has("loss", name))
      throw InputError(fmt::format("[{}] /loss/{} is missing (grad_loss {} needs it)", where, name,
                                   fixture.meta_string("grad_loss")));
    if (is_floating(fixture.info("loss", name).dtype) != floating)
      throw InputError(fmt::format("[{}] /loss/{} is {}, expected {}", where, name,
                                   dtype_name(fixture.info("loss", name).dtype), floating ? "floats" : "integers"));
  };
  const Shape ids = inputs.input_ids.shape;
  Loss loss;
  if (fixture.meta_string("grad_loss") == "logprob_sum") {
    require("weights", true);
    loss.kind = Loss::Kind::kLogprobSum;
    loss.weights = to_array(fixture.read("loss", "weights"), "/loss/weights");
    if (loss.weights.shape != Shape{ids[0], ids[1] - 1})
      throw InputError(fmt::format("[{}] /loss/weights is {}: the loss weights must be [B, S - 1] = [{}, {}]", where,
                                   shape_str(loss.weights.shape), ids[0], ids[1] - 1));
    for (double w : loss.weights.data)
      if (!std::isfinite(w)) throw InputError(fmt::format("[{}] /loss/weights holds {}", where, w));
    // A zero loss has zero gradients everywhere: every row would pass comparing nothing.
    if (std::all_of(loss.weights.data.begin(), loss.weights.data.end(), [](double w) { return w == 0; }))
      throw InputError(fmt::format("[{}] /loss/weights are all zero: the loss and every gradient are zero", where));
  } else {
    require("labels", false);
    loss.kind = Loss::Kind::kCeMean;
    loss.labels = to_index_array(fixture.read("loss", "labels"), "/loss/labels");
    if (loss.labels.shape != ids)
      throw InputError(fmt::format("[{}] /loss/labels is {}: labels must be [B, S] = {}", where,
                                   shape_str(loss.labels.shape), shape_str(ids)));
    // HF's labels: the input ids, -100 where ignored; and at least one scored.
    bool any = false;
    for (size_t i = 0; i < loss.labels.data.size(); ++i) {
      const int64_t label = loss.labels.data[i];
      if (label != -100 && label != inputs.input_ids.data[i])
        throw InputError(fmt::format("[{}] /loss/labels holds {} at flat position {} where the input id is {} (labels "
                                     "are input_ids with -100 where ignored)", where, label, i, inputs.input_ids.data[i]));
      any = any || (label != -100 && i % static_cast<size_t>(ids[1]) != 0);
    }
    if (!any) throw InputError(fmt::format("[{}] /loss/labels score no token (every label past the first is -100)", where));
  }
  return loss;
}

std::vector<std::string> gradient_names(const Fixture& fixture) {
  if (!fixture.has_gradients()) return {};
  std::vector<std::string> names = fixture.names("grad_hooks");
  const std::vector<std::string>& params = fixture.names("grads");
  names.insert(names.end(), params.begin(), params.end());
  names.push_back(kLossRow);
  return names;
}

void check_gradients(const Fixture& fixture, const ReferenceModel& model, const ReferenceModel* floor_model,
                     const Budget& budget, const CheckOptions& options, CheckReport& report) {
  // /grads holds every parameter but /grad_hooks only the hooked layers: the rows of the others
  // would fail for want of HF's gradients, and a KV source would miss its unhooked readers'.
  if (auto it = fixture.meta().find("hooked_layers"); it != fixture.meta().end() && attr_str(it->second) != "all")
    throw InputError(fmt::format("[{}] hooks only layers {}: gradient checks need every layer (dump with --grad and "
                                 "without --layers)", fixture.path().string(), attr_str(it->second)));
  GradSink sink(fixture, budget, options.mode, options.hooks_glob, model.modules());
  GradFloorSink floor;  // outlives the runs: parameter rows are gated in finish()
  if (options.mode == Mode::kGradIsolated) run_isolated(fixture, model, floor_model, floor, sink, options.hooks_glob);
  else run_chained(fixture, model, floor_model, floor, sink, report);
  sink.finish(report);
  if (options.mode == Mode::kGradChained)
    report.notes.push_back("routed as HF routed (the chained forward check gates the routing itself)");
}

}  // namespace parity::harness
