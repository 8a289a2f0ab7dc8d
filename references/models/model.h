// ReferenceModel: what the harness needs from a model family, nothing more.
//   modules()  the module paths the reference can replay, in forward order (HF names);
//   replay()   isolated: recompute one module from HF's own inputs, emit its outputs;
//   forward()  chained: run end to end from input_ids, emit every hook along the way; the
//              emitted top-k is always the reference's own choice.
// Outputs go to a HookSink under the fixture's hook keys (golden/README.md), so the harness can
// compare each one as soon as it exists and drop it.
#pragma once

#include "hook_key.h"  // decoder_layer_of and the hook-key grammar the families emit

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "array.h"
#include "numerics.h"
#include "variants.h"
#include "weights.h"

namespace parity {

// HF's own tensors, by hook key ("model.layers.0.self_attn@in") or by absolute fixture path
// ("/inputs/position_ids"). Throws naming the key when it is absent.
class HookInputs {
 public:
  virtual ~HookInputs() = default;
  virtual Array floats(const std::string& key) const = 0;
  virtual IndexArray ints(const std::string& key) const = 0;
};

class HookSink {
 public:
  virtual ~HookSink() = default;
  virtual void emit(const std::string& key, const Array& value) = 0;
  // A router's top-k choice. Emitted before the router's @top_k_weights.
  struct TopK {
    const IndexArray& index;   // [T, K], the reference's own choice (what is compared)
    const Array& scores;       // [T, E] it was chosen from: tells a near-tie from a wrong routing
    const IndexArray& routed;  // [T, K] the experts actually used, which @top_k_weights follow
  };
  virtual void emit_top_k(const std::string& key, const TopK& top_k) = 0;
};

// How a router's top-k choice is finalised in a chained run. The harness resolves near-ties the
// way HF did: a tie broken the other way would change one token's experts and then cascade
// through every later layer, hiding the real drift. Returning `own` keeps the reference's routing.
class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  // router: the router's hook key ("model.layers.3.mlp.gate"); own [T, K]; scores [T, E].
  virtual IndexArray resolve(const std::string& router, const IndexArray& own, const Array& scores) const = 0;
};

struct ForwardInputs {
  IndexArray input_ids;       // [B, S]
  IndexArray attention_mask;  // [B, S], 1 = real token
  IndexArray position_ids;    // [B, S]
};

// Output gradients by the hook key of the tensor they are the gradient of (a fixture's
// /grad_hooks, golden/README.md "Gradients"). nullopt: no gradient reached that tensor (zero).
class GradInputs {
 public:
  virtual ~GradInputs() = default;
  virtual std::optional<Array> grad(const std::string& key) const = 0;
};

// The scalar loss a chained backward starts from (golden/README.md "Gradients").
struct Loss {
  enum class Kind { kLogprobSum, kCeMean } kind = Kind::kLogprobSum;
  Array weights;      // kLogprobSum: [B, S - 1], each scored next token's weight
  IndexArray labels;  // kCeMean: [B, S], HF's labels (-100: ignored)
};

class ReferenceModel {
 public:
  virtual ~ReferenceModel() = default;
  virtual std::vector<std::string> modules() const = 0;
  virtual void replay(const std::string& module, const HookInputs& inputs, HookSink& sink) const = 0;
  // routing: nullptr keeps the reference's own top-k everywhere.
  virtual void forward(const ForwardInputs& inputs, HookSink& sink, const RoutingPolicy* routing) const = 0;
  // Isolated backward: one module's gradients from HF's inputs (`inputs`, as replay reads them) and
  // HF's gradients of its outputs (`grads`), at the exact math (the ops' *_backward). Emits the
  // module's own vector-Jacobian product for each float input under the input's hook key
  // ("<module>@in", as /grad_hooks stores it) and this module's share of each parameter's gradient
  // under "/grads/<HF name>". The default: an Error naming a module without a backward.
  virtual void replay_backward(const std::string& module, const HookInputs& inputs, const GradInputs& grads,
                               HookSink& sink) const;
  // Chained backward: the reference's own forward from the inputs (routed as `routing` says) and
  // its backward from `loss`, at the exact math. Emits "/loss/value", every parameter's gradient
  // under "/grads/<HF name>" and the output gradient of the modules it passes under their hook keys
  // (embeddings, each decoder layer, the final norm, the head). The default: an Error.
  virtual void forward_backward(const ForwardInputs& inputs, const Loss& loss, HookSink& sink,
                                const RoutingPolicy* routing) const;
};

// The reference for config["model_type"] ("olmoe", ...), or a parity::Error naming the type.
// keep_weights: hold weights in memory once read (for repeated forwards), instead of reading each
// module's weights when it runs. variants: known bugs to reproduce instead of HF's math (variants.h;
// `parity diagnose`); one that does not apply to the family changes nothing.
std::unique_ptr<ReferenceModel> make_reference_model(const nlohmann::json& config, const WeightSource& weights,
                                                     const Numerics& numerics, bool keep_weights = false,
                                                     Variants variants = {});

// The config resolved into what the reference computes, {"family": ..., fields...}: two configs
// (e.g. a fixture's and a checkpoint's config.json, saved in another layout or as the multimodal
// wrapper) describe the same model iff these are equal. parity::Error when unsupported.
nlohmann::ordered_json resolved_config(const nlohmann::json& config);

}  // namespace parity
