// Gemma-4's isolated backward (model.h replay_backward): each leaf module's and the router's
// gradients from HF's own inputs and output gradients, at the exact math of references/ops'
// *_backward. Which keys a module reads is its forward's (gemma4_hooks.cpp).
#include "gemma4.h"

#include "backward_util.h"
#include "gemma4_shared_kv.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/experts.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/router.h"

namespace parity {

using backward::kExact;
using backward::output_grad;
using backward::with_last;

void Gemma4::replay_backward(const std::string& module, const HookInputs& in, const GradInputs& grads,
                             HookSink& sink) const {
  const Gemma4Config& c = config_;
  // Gemma4TextScaledWordEmbedding: table[id] · √dim; the table's gradient is the scaled scatter-add.
  auto scaled_embedding = [&](const std::string& name, int64_t rows, int64_t width, int64_t dim) {
    const IndexArray ids = in.ints(module + "@in");
    Shape out = ids.shape;
    out.push_back(width);
    Array dtable({rows, width});
    ops::embedding_backward(ids, ops::scale_backward(output_grad(grads, module, out), std::sqrt(double(dim)), kExact),
                            dtable);
    sink.emit("/grads/" + name, dtable);
  };
  if (module == module_path("embed_tokens"))
    return scaled_embedding(module_path("embed_tokens.weight"), c.vocab_size, c.hidden_size, c.hidden_size);
  if (module == module_path("embed_tokens_per_layer"))
    return scaled_embedding(module_path("embed_tokens_per_layer.weight"), c.vocab_size_per_layer_input,
                            c.num_hidden_layers * c.hidden_size_per_layer_input, c.hidden_size_per_layer_input);
  if (module == module_path("norm") || module == module_path("per_layer_projection_norm"))
    return backward_norm(module, /*weighted=*/true, in, grads, sink);
  if (module == "lm_head" || module == module_path("per_layer_model_projection"))
    return backward_linear(module, in, grads, sink);
  const int64_t layer = decoder_layer_of(module);
  const std::string base = layer >= 0 ? layer_prefix(layer).substr(0, layer_prefix(layer).size() - 1) : "";
  if (layer >= 0 && replay_backward_layer_module(layer, module.substr(base.size()), module, in, grads, sink)) return;
  ReferenceModel::replay_backward(module, in, grads, sink);
}

void Gemma4::backward_norm(const std::string& m, bool weighted, const HookInputs& in, const GradInputs& grads,
                           HookSink& sink) const {
  const Array x = in.floats(m + "@in");
  const Array dy = output_grad(grads, m, x.shape);
  if (!weighted)
    return sink.emit(m + "@in", ops::rms_norm_backward(x, nullptr, config_.rms_norm_eps, ops::NormWeight::kNone, dy,
                                                       nullptr));
  const auto w = weight(m + ".weight", weight_shape(m));
  const double offset = variants_.has(Variant::kRmsNormOnePlusWeight) ? 1.0 : 0.0;
  Array dw(w->shape);
  sink.emit(m + "@in",
            ops::rms_norm_backward(x, w.get(), config_.rms_norm_eps, ops::NormWeight::kInFloat32, dy, &dw, offset, m));
  sink.emit("/grads/" + m + ".weight", dw);
}

void Gemma4::backward_linear(const std::string& m, const HookInputs& in, const GradInputs& grads, HookSink& sink) const {
  const bool tied_head = m == "lm_head" && config_.tie_word_embeddings;
  const std::string name = tied_head ? module_path("embed_tokens.weight") : m + ".weight";
  const Array x = in.floats(m + "@in");
  const auto w = weight(name, weight_shape(m));
  Array dw(w->shape);
  sink.emit(m + "@in", ops::linear_backward(x, *w, output_grad(grads, m, with_last(x.shape, w->shape[0])), &dw, m));
  sink.emit("/grads/" + name, dw);
}

bool Gemma4::replay_backward_layer_module(int64_t layer, const std::string& step, const std::string& m,
                                          const HookInputs& in, const GradInputs& grads, HookSink& sink) const {
  const Gemma4Config& c = config_;
  if (step == ".input_layernorm" || step == ".post_attention_layernorm" || step == ".pre_feedforward_layernorm" ||
      step == ".self_attn.q_norm" || step == ".self_attn.k_norm" || step == ".post_feedforward_layernorm_1" ||
      step == ".pre_feedforward_layernorm_2" || step == ".post_feedforward_layernorm_2" ||
      step == ".post_feedforward_layernorm" || step == ".post_per_layer_input_norm") {
    backward_norm(m, /*weighted=*/true, in, grads, sink);
    return true;
  }
  if (step == ".self_attn.v_norm" || step == ".router.norm") {
    backward_norm(m, /*weighted=*/false, in, grads, sink);
    return true;
  }
  if (step.ends_with("_proj") || step == ".router.proj" || step == ".per_layer_input_gate" ||
      step == ".per_layer_projection") {
    backward_linear(m, in, grads, sink);
    return true;
  }
  if (step == ".mlp.act_fn" || step == ".act_fn") {
    const Array x = in.floats(m + "@in");
    Array dx = output_grad(grads, m, x.shape);
    for (int64_t i = 0; i < dx.numel(); ++i) dx.data[i] *= ops::activate_derivative(c.hidden_activation, x.data[i]);
    sink.emit(m + "@in", dx);
    return true;
  }
  if (step == ".experts") {
    const std::string p = layer_prefix(layer) + "experts.";
    const auto gate_up = weight(p + "gate_up_proj", {c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size});
    const auto down = weight(p + "down_proj", {c.num_experts, c.hidden_size, c.moe_intermediate_size});
    const Array x = in.floats(m + "@in");
    const ops::ExpertGradients g = ops::experts_backward(x, in.ints(m + "@in1"), in.floats(m + "@in2"),
                                                         {*gate_up, *down}, c.hidden_activation,
                                                         output_grad(grads, m, x.shape));
    sink.emit(m + "@in", g.x);
    sink.emit(m + "@in2", g.weights);
    sink.emit("/grads/" + p + "gate_up_proj", g.gate_up_proj);
    sink.emit("/grads/" + p + "down_proj", g.down_proj);
    return true;
  }
  if (step == ".router") {
    replay_backward_router(layer, m, in, grads, sink);
    return true;
  }
  if (step == ".self_attn") {
    replay_backward_self_attn(layer, m, in, grads, sink);
    return true;
  }
  return false;
}

// Gemma4TextAttention: x -> q_proj -> heads -> q_norm -> RoPE; k_proj -> heads -> k_norm -> RoPE;
// v_proj (k_eq_v: the raw k_proj heads) -> v_norm (no weight); eager attention at scaling 1 ->
// o_proj. Backwards, its forward recomputed at the exact math. KV sharing couples layers through
// HF's shared_kv_states, an input of each reading self_attn: a shared layer's K/V gradient is
// emitted as that input's gradient (it belongs to the source layer), and a source layer adds the
// K/V gradients its readers' stored inputs received (HF's gradients from outside this module, as
// its output gradient is).
void Gemma4::replay_backward_self_attn(int64_t layer, const std::string& m, const HookInputs& in,
                                       const GradInputs& grads, HookSink& sink) const {
  const Gemma4Layer& l = layer_config(layer);
  PARITY_CHECK(variants_.none(), "[backward] the attention backward computes HF's math only (no variants)");
  const Array x = in.floats(m + "@in");
  const ops::RotaryTables rope{in.floats(m + "@in.position_embeddings.0"), in.floats(m + "@in.position_embeddings.1")};
  const KeyValue shared = l.kv_shared ? gemma4_kv::hf_shared_kv(in, m, l.layer_type) : KeyValue{};
  const AttentionTrace t = self_attn(layer, x, rope, in.floats(m + "@in.attention_mask"), l.kv_shared ? &shared : nullptr);
  Array q = t.q_norm;
  ops::apply_rope(q, rope, kExact);
  const std::string p = m + ".";
  auto heads = [&](const Array& a) { return reshaped(a, {x.shape[0], x.shape[1], a.shape[2] / l.head_dim, l.head_dim}); };
  auto flat = [&](Array a) { return reshaped(std::move(a), {x.shape[0], x.shape[1], a.shape[2] * a.shape[3]}); };
  std::map<std::string, Array> params;
  auto linear_back = [&](const std::string& module, const Array& input, const Array& dy) {
    const auto w = weight(module + ".weight", weight_shape(module));
    Array& dw = params.try_emplace(module + ".weight", Array(w->shape)).first->second;
    return ops::linear_backward(input, *w, dy, &dw, module);
  };
  auto norm_back = [&](const std::string& module, const Array& input, const Array& dy) {
    const auto w = weight(module + ".weight", weight_shape(module));
    Array& dw = params.try_emplace(module + ".weight", Array(w->shape)).first->second;
    return ops::rms_norm_backward(input, w.get(), config_.rms_norm_eps, ops::NormWeight::kInFloat32, dy, &dw, 0.0, module);
  };
  auto add = [](Array& into, const Array& a) {
    for (int64_t i = 0; i < into.numel(); ++i) into.data[i] += a.data[i];
  };
  const Array dcontext = linear_back(p + "o_proj", t.context, output_grad(grads, m, x.shape));
  ops::AttentionGradients g = ops::attention_backward(q, t.kv.key, t.kv.value, t.probs, 1.0, dcontext);
  ops::apply_rope_backward(g.q, rope);
  Array dx = linear_back(p + "q_proj", x, flat(norm_back(p + "q_norm", heads(t.q_proj), g.q)));
  if (l.kv_shared) {
    sink.emit(m + "@in", dx);
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 0), gemma4_kv::swap_axes_1_2(g.k));
    sink.emit(gemma4_kv::shared_kv_key(m, l.layer_type, 1), gemma4_kv::swap_axes_1_2(g.v));
    for (const auto& [name, dw] : params) sink.emit("/grads/" + name, dw);
    return;
  }
  for (int64_t other = layer + 1; other < config_.num_hidden_layers; ++other) {
    if (!layer_config(other).kv_shared || layer_config(other).kv_source != layer) continue;
    const std::string reader = layer_prefix(other) + "self_attn";
    for (int slot : {0, 1}) {
      const std::string key = gemma4_kv::shared_kv_key(reader, l.layer_type, slot);
      if (grads.grad(key))
        add(slot == 0 ? g.k : g.v, gemma4_kv::swap_axes_1_2(output_grad(grads, key, gemma4_kv::swap_axes_1_2(g.k).shape)));
    }
  }
  ops::apply_rope_backward(g.k, rope);
  Array dk_raw = norm_back(p + "k_norm", heads(t.k_proj), g.k);
  const Array dv_in = ops::rms_norm_backward(t.v_norm_in, nullptr, config_.rms_norm_eps, ops::NormWeight::kNone, g.v,
                                             nullptr);
  if (l.k_eq_v) {
    add(dk_raw, dv_in);
  } else {
    add(dx, linear_back(p + "v_proj", x, flat(dv_in)));
  }
  add(dx, linear_back(p + "k_proj", x, flat(std::move(dk_raw))));
  sink.emit(m + "@in", dx);
  for (const auto& [name, dw] : params) sink.emit("/grads/" + name, dw);
}

// Gemma4TextRouter: x -> norm (no weight) -> ⊙ scale · H^-½ -> proj -> softmax over all experts ->
// HF's top-k (no gradient) -> renormalised -> · per_expert_scale[index]. Its outputs are the
// probabilities (element 0) and the scaled top-k weights; each may carry a gradient.
void Gemma4::replay_backward_router(int64_t layer, const std::string& m, const HookInputs& in, const GradInputs& grads,
                                    HookSink& sink) const {
  const Gemma4Config& c = config_;
  PARITY_CHECK(!variants_.has(Variant::kGemma4RouterFoldedBf16), "[backward] the folded-router variant has no backward");
  const Array x = in.floats(m + "@in");
  const IndexArray index = in.ints(m + "@top_k_index");
  const auto scale = weight(m + ".scale", {c.hidden_size});
  const auto proj = weight(m + ".proj.weight", weight_shape(m + ".proj"));
  const auto per_expert_scale = weight(m + ".per_expert_scale", {c.num_experts});
  const double root = std::pow(static_cast<double>(c.hidden_size), -0.5);
  // The forward at the exact math, from HF's input.
  const Array normed = ops::rms_norm(x, nullptr, c.rms_norm_eps, ops::NormWeight::kNone, kExact);
  const Array proj_in = ops::scale(ops::multiply_last_dim(normed, *scale, kExact), root, kExact);
  const Array probs = ops::router_probs(ops::linear(proj_in, *proj, kExact), kExact);
  const Array weights = ops::gather_top_k(probs, index, /*renormalise=*/true, kExact);
  PARITY_CHECK(grads.grad(m) || grads.grad(m + "@top_k_weights"),
               "[backward] no gradient of {}'s outputs: nothing downstream of it was differentiated", m);
  Array dscale_expert(per_expert_scale->shape);
  Array dprobs = grads.grad(m + "@top_k_weights")
                     ? ops::gather_top_k_backward(
                           probs, index, true,
                           ops::per_expert_scale_backward(weights, index, *per_expert_scale,
                                                          output_grad(grads, m + "@top_k_weights", index.shape),
                                                          &dscale_expert))
                     : Array(probs.shape);
  if (grads.grad(m)) {
    const Array direct = output_grad(grads, m, probs.shape);
    for (int64_t i = 0; i < dprobs.numel(); ++i) dprobs.data[i] += direct.data[i];
  }
  Array dproj(proj->shape), dscale(scale->shape);
  const Array dproj_in = ops::linear_backward(proj_in, *proj, ops::router_probs_backward(probs, dprobs), &dproj, m);
  const Array dnormed = ops::multiply_last_dim_backward(normed, *scale, ops::scale_backward(dproj_in, root, kExact), &dscale);
  sink.emit(m + "@in", ops::rms_norm_backward(x, nullptr, c.rms_norm_eps, ops::NormWeight::kNone, dnormed, nullptr));
  sink.emit("/grads/" + m + ".scale", dscale);
  sink.emit("/grads/" + m + ".proj.weight", dproj);
  sink.emit("/grads/" + m + ".per_expert_scale", dscale_expert);
}

}  // namespace parity
